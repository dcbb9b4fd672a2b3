"""Extensions end to end: MULTIAPPEND (RFC 3502), QUOTA (RFC 9208), SORT and THREAD
(RFC 5256, RFC 5957), COMPRESS=DEFLATE (RFC 4978) — with the raw client where exact
responses matter and imapclient where a real client library has the command."""

from __future__ import annotations

import re
import zlib

import pytest

from tests.helpers import PASSWORD, client_tls_context
from tests.imap.conftest import USER, deliver, message
from tests.imap.raw import Raw, status, tagged, untagged

QUOTA_USER = "quota@example.test"


def test_capabilities_advertised(connect):
    raw = connect()
    caps = untagged(raw.cmd("CAPABILITY"))[0].split()
    for cap in (b"MULTIAPPEND", b"QUOTA", b"QUOTA=RES-STORAGE", b"SORT", b"SORT=DISPLAY",
                b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES", b"COMPRESS=DEFLATE"):  # fmt: skip
        assert cap in caps
    assert b"QUOTA=RES-MESSAGE" not in caps and b"QUOTASET" not in caps


# -- MULTIAPPEND -----------------------------------------------------------------------------
def test_multiappend_appenduid_set(connect):
    raw = connect()
    one, two = message("one"), message("two")
    out = raw.cmd(
        b'APPEND Drafts (\\Draft) {%d+}\r\n%s (\\Seen) "01-Feb-2020 10:00:00 +0100" {%d+}\r\n%s'
        % (len(one), one, len(two), two)
    )
    assert status(out) == b"OK"
    uidvalidity, uids = re.search(rb"\[APPENDUID (\d+) ([\d:,]+)\]", tagged(out)).groups()
    assert uids == b"1:2"
    raw.cmd("SELECT Drafts")
    lines = untagged(
        raw.cmd("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    )
    assert b"\\Draft" in lines[0] and b"Subject: one" in lines[0]
    assert b"\\Seen" in lines[1] and b'"01-Feb-2020 09:00:00 +0000"' in lines[1]


def test_multiappend_with_synchronising_literals(connect):
    raw = connect()
    one, two = message("sync one"), message("sync two")
    raw.send(b"m APPEND INBOX {%d}\r\n" % len(one))
    assert raw.line().startswith(b"+ ")
    raw.send(one + b" {%d}\r\n" % len(two))
    assert raw.line().startswith(b"+ ")
    raw.send(two + b"\r\n")
    assert raw.until(b"m")[-1].startswith(b"m OK [APPENDUID ")
    assert untagged(raw.cmd("STATUS INBOX (MESSAGES)"))[0].endswith(b"(MESSAGES 2)\r\n")


@pytest.fixture
def quota_raw(srv):
    """A raw session of an account with a 4 KiB quota."""
    srv.add_user(QUOTA_USER, quota=4096)
    raw = Raw(srv.port("imaps"))
    assert status(raw.login(QUOTA_USER, PASSWORD)) == b"OK"
    yield raw
    raw.close()


def test_multiappend_all_or_nothing_on_quota(quota_raw):
    raw = quota_raw
    small, big = message("small"), message("big", body="x" * 5000)
    out = raw.cmd(b"APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s" % (len(small), small, len(big), big))
    assert b" NO [OVERQUOTA]" in tagged(out)
    assert re.search(rb'^\* QUOTA "" \(STORAGE \d+ 4\)', untagged(out)[0])
    # the first message was stored, then taken back: the mailbox is as before
    assert untagged(raw.cmd("STATUS INBOX (MESSAGES)"))[0].endswith(b"(MESSAGES 0)\r\n")
    assert status(raw.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(small), small))) == b"OK"


# -- QUOTA -----------------------------------------------------------------------------------
def test_quota_root_of_a_limited_account(quota_raw):
    raw = quota_raw
    data = message("q", body="y" * 2500)
    raw.cmd(b"APPEND INBOX (\\Deleted) {%d+}\r\n%s" % (len(data), data))
    out = raw.cmd("GETQUOTAROOT INBOX")
    kib = -(-len(data) // 1024)
    assert untagged(out) == [b'* QUOTAROOT INBOX ""\r\n', b'* QUOTA "" (STORAGE %d 4)\r\n' % kib]
    assert untagged(raw.cmd('GETQUOTA ""')) == [b'* QUOTA "" (STORAGE %d 4)\r\n' % kib]
    assert b"[NONEXISTENT]" in tagged(raw.cmd('GETQUOTA "other"'))
    assert b"[NONEXISTENT]" in tagged(raw.cmd("GETQUOTAROOT Nope"))
    assert b"[NOPERM]" in tagged(raw.cmd('SETQUOTA "" (STORAGE 100000)'))
    out = untagged(raw.cmd("STATUS INBOX (DELETED DELETED-STORAGE)"))
    assert out == [b"* STATUS INBOX (DELETED 1 DELETED-STORAGE %d)\r\n" % kib]
    raw.cmd("SELECT INBOX")
    out = raw.cmd("COPY 1:* Archive")
    assert b" NO [OVERQUOTA]" in tagged(out)
    assert untagged(out)[0].startswith(b'* QUOTA "" (STORAGE ')


def test_quota_of_an_unlimited_account(connect):
    raw = connect()
    assert untagged(raw.cmd("GETQUOTAROOT INBOX")) == [b"* QUOTAROOT INBOX\r\n"]
    assert b"[NONEXISTENT]" in tagged(raw.cmd('GETQUOTA ""'))
    out = untagged(raw.cmd('LIST "" INBOX RETURN (STATUS (DELETED-STORAGE))'))
    assert out[1] == b"* STATUS INBOX (DELETED-STORAGE 0)\r\n"


def test_imapclient_quota(srv):
    from imapclient import IMAPClient

    srv.add_user(QUOTA_USER, quota=10 * 1024 * 1024)
    with IMAPClient("127.0.0.1", port=srv.port("imaps"), ssl_context=client_tls_context()) as c:
        c.login(QUOTA_USER, PASSWORD)
        roots, quotas = c.get_quota_root("INBOX")
        assert roots.quota_roots == [""]
        assert [(q.quota_root, q.resource, q.usage, q.limit) for q in quotas] == [
            ("", "STORAGE", 0, 10240)
        ]


# -- SORT / THREAD ---------------------------------------------------------------------------
def _fill_for_sorting(srv):
    deliver(srv, message("Re: beta", sender="zed@example.org", extra="Cc: carol@example.org\r\n"))
    deliver(srv, message("alpha", sender="amy@example.org", body="x" * 3000))
    deliver(srv, message("[list] Beta", sender="bob@example.org"), flags=["\\Seen"])


def test_sort_raw(connect, srv):
    _fill_for_sorting(srv)
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 2 1 3\r\n"]
    assert untagged(raw.cmd("SORT (REVERSE SIZE) UTF-8 ALL")) == [b"* SORT 2 1 3\r\n"]
    assert untagged(raw.cmd("SORT (FROM) UTF-8 ALL")) == [b"* SORT 2 3 1\r\n"]
    assert untagged(raw.cmd("SORT (REVERSE CC ARRIVAL) UTF-8 ALL")) == [b"* SORT 1 2 3\r\n"]
    assert untagged(raw.cmd("UID SORT (SUBJECT) US-ASCII UNSEEN")) == [b"* SORT 2 1\r\n"]
    assert untagged(raw.cmd("SORT (DATE) UTF-8 SUBJECT nothing-matches")) == [b"* SORT\r\n"]
    assert b"[BADCHARSET" in tagged(raw.cmd("SORT (DATE) KOI8-R ALL"))
    assert status(raw.cmd("SORT (DATE) UTF-8 7")) == b"BAD"


def test_thread_raw(connect, srv):
    deliver(srv, message("hello"))  # Message-ID <hello@x>
    deliver(srv, message("Re: hello", extra="In-Reply-To: <hello@x>\r\n"))
    deliver(srv, message("unrelated"))
    deliver(srv, message("Fwd: hello", extra="References: <hello@x> <Re:.hello@x>\r\n"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    # all have the same Date: ties are broken by sequence number
    assert untagged(raw.cmd("THREAD REFERENCES UTF-8 ALL")) == [b"* THREAD (1 2 4)(3)\r\n"]
    assert untagged(raw.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL")) == [b"* THREAD (1 (2)(4))(3)\r\n"]
    assert untagged(raw.cmd("UID THREAD REFERENCES UTF-8 NOT 3")) == [b"* THREAD (1 2 4)\r\n"]


def test_sort_never_announces_expunge(connect, srv):
    for i in range(3):
        deliver(srv, message(f"s{i}"), flags=["\\Deleted"] if i == 0 else [])
    a, b = connect(), connect()
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    a.cmd("EXPUNGE")
    out = b.cmd("SORT (ARRIVAL) UTF-8 ALL")
    assert not [ln for ln in out if b"EXPUNGE" in ln]
    assert b"* SORT 2 3\r\n" in out  # the expunged message is not in the answer
    out = b.cmd("UID SORT (ARRIVAL) UTF-8 ALL")
    assert b"* 1 EXPUNGE\r\n" in out


def test_imapclient_sort_and_thread(srv):
    from imapclient import IMAPClient

    _fill_for_sorting(srv)
    with IMAPClient("127.0.0.1", port=srv.port("imaps"), ssl_context=client_tls_context()) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX")
        assert c.sort(["REVERSE ARRIVAL"]) == [3, 2, 1]
        # every sender is "Bob <...>": DISPLAYFROM ties, the larger message comes first
        assert c.sort(["DISPLAYFROM", "REVERSE SIZE"], ["NOT", "SEEN"]) == [2, 1]
        # "Re: beta" has no references: it joins "[list] Beta" by base subject
        assert c.thread("REFERENCES") == ((2,), (3, 1))


# -- COMPRESS --------------------------------------------------------------------------------
class Deflated:
    """A socket-like wrapper: raw deflate both ways, as a client does after COMPRESS."""

    def __init__(self, sock) -> None:  # noqa: ANN001
        self.sock = sock
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def recv(self, size: int) -> bytes:
        while True:
            chunk = self.sock.recv(size)
            if not chunk:
                return b""
            data = self.inflate.decompress(chunk)
            if data:
                return data

    def settimeout(self, value: float) -> None:
        self.sock.settimeout(value)

    def close(self) -> None:
        self.sock.close()


def _compress(raw: Raw, pipelined: bytes = b"") -> Deflated:
    """COMPRESS DEFLATE, with ``pipelined`` commands sent compressed in the same packet."""
    wrapped = Deflated(raw.sock)
    tail = wrapped.out.compress(pipelined) + wrapped.out.flush(zlib.Z_SYNC_FLUSH)
    raw.send(b"z COMPRESS DEFLATE\r\n" + (tail if pipelined else b""))
    assert raw.until(b"z")[-1] == b"z OK DEFLATE active\r\n"
    raw.buf = wrapped.inflate.decompress(raw.buf)  # compressed bytes read along with the OK
    raw.sock = wrapped
    return wrapped


def test_compress_roundtrip_and_pipelining(connect, srv):
    deliver(srv, message("squeezed", body="compressible text " * 500))
    raw = connect()
    _compress(raw, pipelined=b"p1 SELECT INBOX\r\n")
    assert raw.until(b"p1")[-1].startswith(b"p1 OK [READ-WRITE]")
    out = raw.cmd("FETCH 1 BODY.PEEK[TEXT]")
    assert b"compressible text " * 500 in out[0]
    caps = untagged(raw.cmd("CAPABILITY"))[0]
    assert b"COMPRESS=DEFLATE" not in caps
    assert b"[COMPRESSIONACTIVE]" in tagged(raw.cmd("COMPRESS DEFLATE"))
    # IDLE works through the compressed stream too
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    deliver(srv, message("while compressed"))
    assert raw.line() == b"* 2 EXISTS\r\n"
    raw.send(b"DONE\r\n")
    assert raw.until(b"i")[-1] == b"i OK IDLE terminated\r\n"


def test_compress_refusals(connect, srv):
    raw = connect()
    assert status(raw.cmd("COMPRESS GZIP")) == b"BAD"
    pre = Raw(srv.port("imaps"))
    assert tagged(pre.cmd("COMPRESS DEFLATE")) == b"t1 BAD Log in first\r\n"
    pre.close()


def test_compressed_bomb_is_bounded(connect):
    """A 64 MiB line compressed to ~64 KiB is refused like any long line, without the
    server ever holding more than the line bound, and the session goes on."""
    raw = connect()
    wrapped = _compress(raw)
    for _ in range(64):
        raw.sock.sock.sendall(wrapped.out.compress(b"A" * (1 << 20)))
    raw.send(b"\r\nn NOOP\r\n")
    assert raw.line().startswith(b"* BAD [TOOBIG] Line too long")
    assert raw.until(b"n")[-1] == b"n OK NOOP completed\r\n"


def test_corrupt_compressed_stream_ends_session(connect):
    raw = connect()
    _compress(raw)
    raw.sock.sock.sendall(b"\xff\xfe\xfd garbage that is not deflate")
    raw.sock = raw.sock.sock  # the goodbye comes uncompressed
    assert raw.line() == b"* BYE Invalid compressed data\r\n"


def test_corrupt_compressed_stream_during_idle(connect):
    raw = connect()
    _compress(raw)
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    raw.sock.sock.sendall(b"\xff\xfe\xfd garbage that is not deflate")
    raw.sock = raw.sock.sock
    assert raw.line() == b"* BYE Invalid compressed data\r\n"


def test_sort_records_follow_the_mailbox(connect, srv):
    """Sort records are cached per process: new messages join, expunged ones leave."""
    deliver(srv, message("b"))
    deliver(srv, message("a"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 2 1\r\n"]
    deliver(srv, message("0"))
    raw.cmd("NOOP")
    assert untagged(raw.cmd("SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 3 2 1\r\n"]
    raw.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    raw.cmd("EXPUNGE")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 3 1\r\n"]
    assert untagged(raw.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL")) == [b"* THREAD (1)(2)\r\n"]
