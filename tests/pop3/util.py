"""Helpers shared by the POP3 tests: drive the core, decode multi-line bodies, a SCRAM client."""

from __future__ import annotations

from postroom.pop3.core import Event, Login, Pop3Core, Reply, State
from postroom.pop3.maildrop import Entry, Maildrop


def make_core(*, secure: bool = False, plaintext: bool = True, tls: bool = True) -> Pop3Core:
    mechanisms = ["PLAIN", "LOGIN", "SCRAM-SHA-256"] if plaintext else []
    return Pop3Core(
        "pop.example.test",
        secure=secure,
        tls_available=tls,
        mechanisms=mechanisms,
        plaintext_allowed=plaintext,
    )


def events(core: Pop3Core, data: bytes = b"") -> list[Event]:
    """Feed ``data`` and collect events until the core needs input or a completion."""
    core.receive(data)
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def one(core: Pop3Core, data: bytes) -> Event:
    got = events(core, data)
    assert len(got) == 1, got
    return got[0]


def reply(core: Pop3Core, data: bytes) -> bytes:
    """The bytes of the single Reply/Close that ``data`` produces."""
    event = one(core, data)
    assert hasattr(event, "data"), event
    return event.data  # type: ignore[union-attr]


MESSAGES = [Entry(uid=10, size=100, seen=False), Entry(11, 250, True), Entry(15, 30, False)]


def logged_in(entries: list[Entry] | None = None, uidvalidity: int = 7) -> Pop3Core:
    """A core in the TRANSACTION state with a small maildrop."""
    core = make_core()
    assert reply(core, b"USER a@example.test\r\n").startswith(b"+OK")
    assert isinstance(one(core, b"PASS secret\r\n"), Login)
    answer = core.logged_in(Maildrop(uidvalidity, MESSAGES if entries is None else entries))
    assert isinstance(answer, Reply) and answer.data.startswith(b"+OK")
    assert core.state is State.TRANSACTION
    return core


def unstuff(payload: bytes) -> bytes:
    """The content of a multi-line body (after the status line) without stuffing and
    terminator."""
    assert payload.endswith(b".\r\n"), payload[-20:]
    payload = payload[:-3]
    lines = payload.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
