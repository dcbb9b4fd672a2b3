"""Property: any bytes, in any state, get well-formed replies and never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.pop3.core import (
    Close,
    Login,
    Pop3Core,
    Reply,
    Retrieve,
    SaslCancel,
    SaslResponse,
    SaslStart,
    StartTls,
    State,
    Update,
)
from postroom.pop3.maildrop import Entry, Maildrop
from tests.pop3.util import logged_in, make_core

COMMANDS = [
    b"USER a", b"PASS b c", b"APOP a b", b"AUTH PLAIN", b"AUTH LOGIN AGI=", b"AUTH", b"*",
    b"STLS", b"UTF8", b"CAPA", b"STAT", b"LIST", b"LIST 1", b"UIDL 2", b"RETR 1", b"TOP 1 3",
    b"DELE 1", b"RSET", b"NOOP", b"QUIT", b"=", b"dGVzdA==",
]  # fmt: skip

chunk = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(COMMANDS).map(lambda c: c + b"\r\n"),
    st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\x00", b"\xff"]),
    st.integers(250, 13000).map(lambda n: b"x" * n),
)


def start(kind: str) -> Pop3Core:
    if kind == "transaction":
        return logged_in([Entry(1, 10, False), Entry(2, 20, True)])
    if kind == "sasl":
        core = make_core()
        core.receive(b"AUTH LOGIN\r\n")
        assert isinstance(core.next_event(), SaslStart)
        core.sasl_challenge(b"Username:")
        return core
    return make_core(secure=kind == "secure", plaintext=kind != "no-plaintext")


def check_reply(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert data.startswith((b"+OK", b"-ERR", b"+ "))
    assert len(data.split(b"\r\n", 1)[0]) <= 510  # RFC 1939 §3: 512 octets with CRLF
    if data.count(b"\r\n") > 1:
        assert data.endswith(b"\r\n.\r\n")


def complete(core: Pop3Core, event, choice: int) -> bytes | None:
    """Finish an I/O event the way a session would; the reply it produces."""
    if isinstance(event, Reply | Close):
        return event.data
    if isinstance(event, SaslCancel):
        return event.reply
    if isinstance(event, StartTls):
        core.tls_started(["PLAIN"], True)
        return None
    if isinstance(event, Login | SaslStart | SaslResponse):
        if choice == 0:
            return core.logged_in(Maildrop(3, [Entry(5, 1, False)])).data
        if choice == 1 and not isinstance(event, Login):
            return core.sasl_challenge(bytes([choice]) * 3).data
        return core.login_failed(("AUTH", "SYS/TEMP", "IN-USE")[choice % 3], "no").data
    if isinstance(event, Retrieve):
        if choice == 2:
            return core.retrieve_failed().data
        return core.retrieved(b"H: v\n\n.x\r\n" * choice).data
    assert isinstance(event, Update)
    return core.update_done(choice != 2, choice).data


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["plain", "secure", "no-plaintext", "sasl", "transaction"]),
    st.lists(chunk, max_size=12),
    st.lists(st.integers(0, 3), min_size=1, max_size=8),
)
def test_any_input_any_state(kind, chunks, choices):
    core = start(kind)
    replies = 0
    dropped = False  # STLS or a close discards input, so counting stops
    fed_lf = 0
    for i, data in enumerate(chunks):
        core.receive(data)
        if core.state is not State.CLOSED:
            fed_lf += data.count(b"\n")
        while (event := core.next_event()) is not None:
            out = complete(core, event, choices[i % len(choices)])
            if out is None:
                dropped = True
            else:
                check_reply(out)
                replies += 1
    if not dropped and core.state in (State.AUTHORIZATION, State.TRANSACTION):
        # every complete line got exactly one reply
        assert replies == fed_lf - core._buffer.count(b"\n")
