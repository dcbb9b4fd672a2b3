"""Many sessions idling on one mailbox (RFC 2177): a parked IDLE session is told of new
messages, flag changes and expunges by the one shared query's answer, in the form its own
state asks for (IMAP4rev1 / rev2, read-only, CONDSTORE, QRESYNC), and \\Recent still goes to
exactly one session (RFC 3501 §2.3.2)."""

from __future__ import annotations

import re
import time

from tests.imap.conftest import deliver, message
from tests.imap.raw import Raw, untagged


def _idle(raw: Raw) -> None:
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")


def _lines_until(raw: Raw, pattern: bytes, seconds: float = 10.0) -> list[bytes]:
    """Every line up to and including the first that matches ``pattern``."""
    raw.sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    lines: list[bytes] = []
    while time.monotonic() < deadline:
        lines.append(raw.line())
        if re.search(pattern, lines[-1]):
            return lines
    raise AssertionError(f"no {pattern!r} within {seconds}s: {lines}")


def _done(raw: Raw) -> list[bytes]:
    raw.send(b"DONE\r\n")
    return raw.until(b"i")


def test_idling_sessions_are_told_in_their_own_form(connect, srv):
    rev1 = [connect() for _ in range(6)]
    rev2, qresync, readonly, other = connect(), connect(), connect(), connect()
    rev2.cmd("ENABLE IMAP4rev2")
    qresync.cmd("ENABLE QRESYNC")
    for raw in [*rev1, rev2, qresync]:
        raw.cmd("SELECT INBOX")
    readonly.cmd("EXAMINE INBOX")
    other.cmd("SELECT INBOX")
    idlers = [*rev1, qresync, rev2, readonly]
    for raw in idlers:
        _idle(raw)

    deliver(srv, message("one"))
    claimers = [*rev1, qresync]  # IMAP4rev1, read-write: \Recent is claimed (RFC 3501)
    recent = []
    for raw in claimers:
        lines = _lines_until(raw, rb"^\* \d+ RECENT")
        assert lines[0] == b"* 1 EXISTS\r\n"
        recent.append(lines[-1])
    assert sorted(recent) == [b"* 0 RECENT\r\n"] * 6 + [b"* 1 RECENT\r\n"]
    for raw in (rev2, readonly):
        assert _lines_until(raw, rb"EXISTS") == [b"* 1 EXISTS\r\n"]
    has_recent = []
    for raw in idlers:
        assert _done(raw) == [b"i OK IDLE terminated\r\n"]
        has_recent.append(b"\\Recent" in untagged(raw.cmd("FETCH 1 (FLAGS)"))[0])
        _idle(raw)
    assert has_recent.count(True) == 1 and has_recent.index(True) < len(claimers)

    assert b"* 1 EXISTS\r\n" in untagged(other.cmd("NOOP"))
    other.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)")
    for raw in idlers:
        line = _lines_until(raw, rb"FETCH")[-1]
        assert line.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Flagged")
        assert (b"MODSEQ (" in line) == (raw is qresync)

    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    for raw in idlers:
        expected = b"* VANISHED 1\r\n" if raw is qresync else b"* 1 EXPUNGE\r\n"
        assert _lines_until(raw, rb"EXPUNGE|VANISHED")[-1] == expected
        assert _done(raw)[-1] == b"i OK IDLE terminated\r\n"


def test_idling_session_follows_a_burst_of_deliveries(connect, srv):
    """Deliveries committed while the shared query runs are asked for again, never lost."""
    import asyncio

    idlers = [connect() for _ in range(3)]
    for raw in idlers:
        raw.cmd("SELECT INBOX")
        _idle(raw)

    async def burst() -> None:
        account = await srv.store.get_account("alice@example.test")
        inbox = await srv.store.get_mailbox(account.id, "INBOX")
        await asyncio.gather(*(srv.store.append(inbox.id, message(f"b{i}")) for i in range(5)))
        for i in range(10):  # one commit at a time, each racing the previous one's query
            await srv.store.append(inbox.id, message(f"s{i}"))

    srv.call(burst())
    for raw in idlers:
        counts = [
            int(m.group(1))
            for line in _lines_until(raw, rb"^\* 15 EXISTS")
            if (m := re.match(rb"\* (\d+) EXISTS", line))
        ]
        assert counts == sorted(set(counts)) and counts[-1] == 15
        _done(raw)
        out = untagged(raw.cmd("FETCH 1:* (UID)"), b"FETCH")
        assert out == [b"* %d FETCH (UID %d)\r\n" % (n, n) for n in range(1, 16)]


def test_mailbox_deleted_under_idling_session(connect):
    a, b = connect(), connect()
    a.cmd("CREATE Doomed")
    b.cmd("SELECT Doomed")
    _idle(b)
    a.cmd("DELETE Doomed")
    assert _lines_until(b, rb"BYE")[-1].startswith(b"* BYE")


def test_changes_to_other_mailboxes_are_not_announced(connect, srv):
    idler = connect()
    idler.cmd("SELECT INBOX")
    _idle(idler)
    for i in range(3):
        deliver(srv, message(f"elsewhere {i}"), mailbox="Archive")
    deliver(srv, message("here"))
    assert _lines_until(idler, rb"EXISTS") == [b"* 1 EXISTS\r\n"]
    assert _done(idler) == [b"* 1 RECENT\r\n", b"i OK IDLE terminated\r\n"]
    assert b"MESSAGES 3" in untagged(idler.cmd("STATUS Archive (MESSAGES)"))[0]
