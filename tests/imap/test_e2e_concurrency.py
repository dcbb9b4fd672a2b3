"""Several sessions on one mailbox (RFC 9051 §5.2, §7.5.1), IDLE (RFC 2177) woken by the
store's notifier, CONDSTORE and QRESYNC resynchronisation (RFC 7162)."""

from __future__ import annotations

import re
import time

from tests.imap.conftest import USER as USER_ADDRESS
from tests.imap.conftest import deliver, message
from tests.imap.raw import status, tagged, untagged


def test_two_sessions_see_each_other(connect, srv):
    for i in range(3):
        deliver(srv, message(f"c{i}"))
    a, b = connect(), connect()
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    # flags set by A reach B as FETCH at its next command
    a.cmd("STORE 2 +FLAGS (\\Flagged)")
    out = untagged(b.cmd("NOOP"))
    assert out == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n"]
    # a new message reaches both as EXISTS
    deliver(srv, message("new"))
    assert b"* 4 EXISTS\r\n" in untagged(a.cmd("NOOP"))
    assert b"* 4 EXISTS\r\n" in untagged(b.cmd("NOOP"))
    # an expunge by A is announced to B as EXPUNGE, but never during FETCH/STORE/SEARCH
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert untagged(a.cmd("EXPUNGE")) == [b"* 1 EXPUNGE\r\n"]
    out = b.cmd("FETCH 1:4 (UID)")
    assert not [ln for ln in out if b"EXPUNGE" in ln]
    assert len(untagged(out, b"FETCH")) == 4  # B's numbering is unchanged during FETCH
    out = b.cmd("SEARCH ALL")
    assert not [ln for ln in out if b"EXPUNGE" in ln]
    out = untagged(b.cmd("UID SEARCH ALL"))
    assert b"* 1 EXPUNGE\r\n" in out
    assert b"* SEARCH 2 3 4\r\n" in out
    assert untagged(b.cmd("FETCH 1 (UID)")) == [b"* 1 FETCH (UID 2)\r\n"]


def test_fetch_of_message_expunged_elsewhere(connect, srv):
    for i in range(2):
        deliver(srv, message(f"g{i}"), flags=["\\Deleted"])
    a, b = connect(), connect()
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    a.cmd("EXPUNGE")
    out = b.cmd("FETCH 1:2 (ENVELOPE)")
    assert b"[EXPUNGEISSUED]" in tagged(out)
    assert untagged(b.cmd("NOOP")) == [b"* 2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]


def _wait_for(raw, pattern: bytes, seconds: float = 5.0) -> bytes:
    raw.sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = raw.line()
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no {pattern!r} within {seconds}s")


def test_idle_woken_by_store_delivery_and_other_session(connect, srv):
    deliver(srv, message("before"))
    idler, other = connect(), connect()
    idler.cmd("SELECT INBOX")
    other.cmd("SELECT INBOX")
    idler.send(b"i1 IDLE\r\n")
    assert idler.line().startswith(b"+ ")
    deliver(srv, message("during idle"))
    assert _wait_for(idler, rb"^\* 2 EXISTS") == b"* 2 EXISTS\r\n"
    other.cmd("STORE 1 +FLAGS (\\Seen)")
    assert b"\\Seen" in _wait_for(idler, rb"FETCH")
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    _wait_for(idler, rb"^\* 1 EXPUNGE")
    idler.send(b"DONE\r\n")
    assert idler.until(b"i1")[-1] == b"i1 OK IDLE terminated\r\n"
    assert status(idler.cmd("NOOP")) == b"OK"


def test_idle_without_selected_mailbox_and_bad_continuation(connect):
    raw = connect()
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(b"NOTDONE\r\n")
    assert raw.until(b"i")[-1].startswith(b"i BAD")


def test_condstore_fetch_changedsince_and_unchangedsince(connect, srv):
    for i in range(3):
        deliver(srv, message(f"m{i}"))
    raw = connect()
    out = raw.cmd("SELECT INBOX (CONDSTORE)")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(out)).group(1))
    out = untagged(raw.cmd("STORE 2 +FLAGS (\\Seen)"))
    assert re.fullmatch(rb"\* 2 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \((\d+)\)\)\r\n", out[0])
    out = untagged(raw.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})"))
    assert len(out) == 1 and out[0].startswith(b"* 2 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (")
    out = raw.cmd(f"STORE 1:3 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)")
    assert tagged(out).split(b" ")[2:4] == [b"[MODIFIED", b"2]"]
    assert len(untagged(out, b"FETCH")) == 2
    out = untagged(raw.cmd("SEARCH MODSEQ 1"))
    assert re.fullmatch(rb"\* SEARCH 1 2 3 \(MODSEQ \d+\)\r\n", out[0])
    out = untagged(raw.cmd("STATUS Trash (HIGHESTMODSEQ)"))
    assert b"HIGHESTMODSEQ" in out[0]


def test_qresync_resync_after_changes(connect, srv):
    for i in range(5):
        deliver(srv, message(f"q{i}"))
    first = connect()
    first.cmd("ENABLE QRESYNC")
    out = first.cmd("SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(out)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(out)).group(1))
    first.cmd("LOGOUT")
    # another client changes things while the first is offline
    other = connect()
    other.cmd("SELECT INBOX")
    other.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.cmd("STORE 4 +FLAGS.SILENT (\\Answered)")
    other.cmd("EXPUNGE")
    # the first client comes back and resynchronises in one round trip
    again = connect()
    assert untagged(again.cmd("ENABLE QRESYNC")) == [b"* ENABLED QRESYNC\r\n"]
    out = again.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:5))")
    text = b"".join(out)
    assert b"* VANISHED (EARLIER) 2\r\n" in text
    assert re.search(rb"\* 3 FETCH \(UID 4 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", text)
    # later expunges come as VANISHED, not EXPUNGE
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    assert untagged(again.cmd("NOOP")) == [b"* VANISHED 1\r\n"]
    out = untagged(again.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"))
    assert out[0] == b"* VANISHED (EARLIER) 1:2\r\n"
    assert status(again.cmd("SELECT INBOX (QRESYNC (1 1))")) == b"OK"  # wrong uidvalidity: full


def test_qresync_requires_enable(connect):
    raw = connect()
    assert status(raw.cmd("SELECT INBOX (QRESYNC (1 1))")) == b"BAD"


def test_mailbox_deleted_under_selecting_session(connect):
    a, b = connect(), connect()
    a.cmd("CREATE Doomed")
    b.cmd("SELECT Doomed")
    a.cmd("DELETE Doomed")
    b.send(b"n NOOP\r\n")
    assert b.line().startswith(b"* BYE")


def test_imapclient_idle_push(srv):
    from imapclient import IMAPClient

    from tests.helpers import PASSWORD, client_tls_context
    from tests.imap.conftest import USER

    with IMAPClient("127.0.0.1", port=srv.port("imaps"), ssl_context=client_tls_context()) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX")
        c.idle()
        deliver(srv, message("pushed"))
        responses = c.idle_check(timeout=5)
        c.idle_done()
        assert (1, b"EXISTS") in responses
        assert c.search(["SUBJECT", "pushed"]) == [1]


def test_idle_woken_by_smtp_delivery(connect, srv):
    import smtplib

    idler = connect()
    idler.cmd("SELECT INBOX")
    idler.send(b"i1 IDLE\r\n")
    assert idler.line().startswith(b"+ ")
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=30) as smtp:
        smtp.sendmail("bob@example.org", [USER_ADDRESS], message("by smtp"))
    assert _wait_for(idler, rb"^\* 1 EXISTS", seconds=10) == b"* 1 EXISTS\r\n"
    idler.send(b"DONE\r\n")
    assert idler.until(b"i1")[-1].startswith(b"i1 OK")


def test_select_from_a_shared_snapshot_sees_every_change(connect, srv):
    """A SELECT starting from the snapshot another session holds (or held: it is kept for the
    next SELECT) is caught up with appends, flag changes and expunges made since."""
    for i in range(4):
        deliver(srv, message(f"s{i}"))
    a = connect()
    a.cmd("SELECT INBOX")
    a.cmd("STORE 1 +FLAGS (\\Seen)")  # A's own change: its view is private until it syncs
    c = connect()
    c.cmd("SELECT INBOX")
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.cmd("EXPUNGE")
    deliver(srv, message("s4"), flags=["\\Flagged"])
    a.cmd("LOGOUT")
    expected = [b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n", b"* 2 FETCH (UID 3 FLAGS ())\r\n",
                b"* 3 FETCH (UID 4 FLAGS ())\r\n", b"* 4 FETCH (UID 5 FLAGS (\\Flagged))\r\n"]  # fmt: skip
    for _ in range(2):  # the first SELECT catches up the kept snapshot, the second shares it
        b = connect()
        assert b"* 4 EXISTS\r\n" in untagged(b.cmd("SELECT INBOX"))
        assert _no_recent(untagged(b.cmd("FETCH 1:* (UID FLAGS)"))) == expected
        b.cmd("LOGOUT")
    assert b"* 4 EXISTS\r\n" in untagged(c.cmd("NOOP"))
    assert _no_recent(untagged(c.cmd("FETCH 1:* (UID FLAGS)"))) == expected


def _no_recent(lines: list[bytes]) -> list[bytes]:
    return [ln.replace(b" \\Recent", b"").replace(b"\\Recent", b"") for ln in lines]
