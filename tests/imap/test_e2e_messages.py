"""Selected-state commands end to end: FETCH (metadata, sections, partial, BINARY, \\Seen),
STORE, SEARCH/ESEARCH/SEARCHRES, COPY/MOVE with COPYUID, EXPUNGE, CLOSE, UNSELECT."""

from __future__ import annotations

import imaplib

from tests.imap.conftest import deliver, message
from tests.imap.raw import status, tagged, untagged

# RFC 3501 §6.4.5 / §7.4.2 example message (ENVELOPE and BODY hand-checked below).
RFC_BODY = "".join(f"line {i:02d} of the minutes\r\n" for i in range(92))
RFC_MESSAGE = (
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    "From: Terry Gray <gray@cac.washington.edu>\r\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    "To: imap@cac.washington.edu\r\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    "\r\n" + RFC_BODY
).encode()

MULTIPART = (
    b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAw==\r\n--XX--\r\n"
)


def test_fetch_envelope_and_body_rfc_example(connect, srv):
    deliver(srv, RFC_MESSAGE)
    raw = connect()
    raw.cmd("SELECT INBOX")
    line = untagged(raw.cmd("FETCH 1 (ENVELOPE BODY)"))[0]
    envelope = (
        b'ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes"'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' (("Terry Gray" NIL "gray" "cac.washington.edu"))'
        b' ((NIL NIL "imap" "cac.washington.edu"))'
        # RFC 9051 §9 env-cc = "(" 1*address ")": addresses follow each other without a space
        b' ((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU"))'
        b' NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    body = b'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" %d 92)' % len(RFC_BODY)
    assert line == b"* 1 FETCH (" + envelope + b" " + body + b")\r\n"


def test_fetch_bodystructure_multipart_sections_binary(connect, srv):
    deliver(srv, MULTIPART)
    raw = connect()
    raw.cmd("SELECT INBOX")
    line = untagged(raw.cmd("FETCH 1 BODYSTRUCTURE"))[0]
    assert line.startswith(b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8")')
    assert b'"MIXED" ("BOUNDARY" "XX")' in line
    out = untagged(
        raw.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.PEEK[2] BINARY.SIZE[2])")
    )
    text = out[0]
    assert b"BODY[1] {10}\r\nfirst part" in text
    assert b"BODY[2.MIME] {" in text and b"Content-Transfer-Encoding: base64" in text
    assert b"BINARY[2] ~{4}\r\n\x00\x01\x02\x03" in text
    assert b"BINARY.SIZE[2] 4" in text
    out = untagged(
        raw.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject)] BODY.PEEK[1]<6.4> BODY.PEEK[9])")
    )
    assert b"BODY[HEADER.FIELDS (subject)] {18}\r\nSubject: parts\r\n\r\n" in out[0]
    assert b"BODY[1]<6> {4}\r\npart" in out[0]
    assert b"BODY[9] NIL" in out[0]


def test_fetch_peek_and_seen(connect, srv):
    deliver(srv, message("x"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    out = untagged(raw.cmd("FETCH 1 (BODY.PEEK[] FLAGS)"))
    assert b"\\Seen" not in out[0]
    out = untagged(raw.cmd("FETCH 1 BODY[TEXT]"))
    assert b"FLAGS (\\Seen \\Recent)" in out[0]
    raw.cmd("EXAMINE INBOX")
    raw.cmd("STORE 1 -FLAGS \\Seen")  # refused: read-only
    out = untagged(raw.cmd("FETCH 1 (RFC822.HEADER RFC822.SIZE INTERNALDATE UID)"))
    assert b"RFC822.HEADER {" in out[0] and b"UID 1" in out[0]


def test_fetch_macros_ranges_and_errors(connect, srv):
    for i in range(5):
        deliver(srv, message(f"m{i}"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    out = untagged(raw.cmd("FETCH 2:* FAST"))
    assert [ln.split(b" ")[1] for ln in out] == [b"2", b"3", b"4", b"5"]
    assert b"FLAGS" in out[0] and b"INTERNALDATE" in out[0] and b"RFC822.SIZE" in out[0]
    assert status(raw.cmd("FETCH 9 FLAGS")) == b"BAD"
    out = untagged(raw.cmd("UID FETCH 3:100 FLAGS"))
    assert [ln.split(b" ")[1] for ln in out] == [b"3", b"4", b"5"]
    assert all(b"UID " in ln for ln in out)
    assert untagged(raw.cmd("UID FETCH 50:60 FLAGS")) == []
    assert untagged(raw.cmd("UID FETCH 50:* FLAGS")) == [b"* 5 FETCH (UID 5 FLAGS (\\Recent))\r\n"]


def test_store_variants(connect, srv):
    for i in range(3):
        deliver(srv, message(f"m{i}"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    out = untagged(raw.cmd("STORE 1:2 +FLAGS (\\Flagged $Work)"))
    assert out[0].startswith(b"* FLAGS (") and b"$Work" in out[0]  # new keyword announced
    fetches = [ln for ln in out if b"FETCH" in ln]
    assert fetches == [
        b"* 1 FETCH (FLAGS (\\Flagged $Work \\Recent))\r\n",
        b"* 2 FETCH (FLAGS (\\Flagged $Work \\Recent))\r\n",
    ] or all(b"\\Flagged" in ln and b"$Work" in ln for ln in fetches)
    assert untagged(raw.cmd("STORE 1 -FLAGS.SILENT (\\Flagged)")) == []
    out = untagged(raw.cmd("UID STORE 3 FLAGS (\\Answered)"))
    assert out == [b"* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent))\r\n"]
    out = untagged(raw.cmd("FETCH 1:3 FLAGS"))
    assert b"\\Flagged" not in out[0] and b"$Work" in out[0]


def test_search_keys_and_esearch(connect, srv):
    deliver(srv, message("alpha report", body="the zebra runs\r\n"), flags=["\\Seen"])
    deliver(srv, message("beta", sender="carol@example.net"), flags=["\\Flagged"])
    deliver(srv, message("gamma report", body="x" * 5000))
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("SEARCH UNSEEN")) == [b"* SEARCH 2 3\r\n"]
    assert untagged(raw.cmd("SEARCH SUBJECT report")) == [b"* SEARCH 1 3\r\n"]
    assert untagged(raw.cmd("SEARCH FROM carol")) == [b"* SEARCH 2\r\n"]
    assert untagged(raw.cmd("SEARCH BODY zebra")) == [b"* SEARCH 1\r\n"]
    assert untagged(raw.cmd("SEARCH TEXT zebra")) == [b"* SEARCH 1\r\n"]
    assert untagged(raw.cmd("SEARCH LARGER 3000")) == [b"* SEARCH 3\r\n"]
    assert untagged(raw.cmd("SEARCH OR FLAGGED SEEN")) == [b"* SEARCH 1 2\r\n"]
    assert untagged(raw.cmd("SEARCH NOT 1:2")) == [b"* SEARCH 3\r\n"]
    assert untagged(raw.cmd("SEARCH SENTBEFORE 1-Jan-2000")) == [b"* SEARCH 1 2 3\r\n"]
    assert untagged(raw.cmd("UID SEARCH UID 2:*")) == [b"* SEARCH 2 3\r\n"]
    assert untagged(raw.cmd("SEARCH HEADER Message-ID <beta@x>")) == [b"* SEARCH 2\r\n"]
    assert untagged(raw.cmd("SEARCH RECENT")) == [b"* SEARCH 1 2 3\r\n"]
    assert untagged(raw.cmd("SEARCH NOTHING")) == []
    assert b"[BADCHARSET" in tagged(raw.cmd("SEARCH CHARSET KOI8-R ALL"))
    out = untagged(raw.cmd("UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN"))
    assert out[0].endswith(b" UID MIN 2 MAX 3 ALL 2:3 COUNT 2\r\n")
    assert out[0].startswith(b'* ESEARCH (TAG "t')
    out = untagged(raw.cmd("SEARCH RETURN (COUNT) DELETED"))
    assert out[0].endswith(b" COUNT 0\r\n")


def test_searchres_saved_result(connect, srv):
    for i in range(4):
        deliver(srv, message(f"s{i}"), flags=["\\Seen"] if i % 2 else [])
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("UID SEARCH RETURN (SAVE) UNSEEN")) == []
    out = untagged(raw.cmd("FETCH $ (UID)"))
    assert [ln.split(b" ")[1] for ln in out] == [b"1", b"3"]
    raw.cmd("SEARCH RETURN (SAVE MAX) ALL")
    assert untagged(raw.cmd("UID FETCH $ UID")) == [b"* 4 FETCH (UID 4)\r\n"]
    assert untagged(raw.cmd("SEARCH $")) == [b"* SEARCH 4\r\n"]


def test_copy_move_copyuid(connect, srv):
    for i in range(3):
        deliver(srv, message(f"c{i}"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    out = raw.cmd("COPY 1:2 Archive")
    assert b"[COPYUID " in tagged(out) and tagged(out).split(b"] ")[0].endswith(b" 1:2 1:2")
    assert b"[TRYCREATE]" in tagged(raw.cmd("COPY 1 Nope"))
    out = raw.cmd("UID MOVE 2:3 Trash")
    assert out[0].startswith(b"* OK [COPYUID ") and b" 2:3 1:2]" in out[0]
    assert out[1:3] == [b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    assert status(out) == b"OK"
    assert untagged(raw.cmd("STATUS Trash (MESSAGES)"))[0].endswith(b"(MESSAGES 2)\r\n")
    assert b"* 1 EXISTS" not in b"".join(raw.cmd("NOOP"))


def test_expunge_uid_expunge_close_unselect(connect, srv):
    for i in range(4):
        deliver(srv, message(f"e{i}"), flags=["\\Deleted"])
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("UID EXPUNGE 2")) == [b"* 2 EXPUNGE\r\n"]
    raw.cmd("STORE 1 -FLAGS (\\Deleted)")
    out = untagged(raw.cmd("EXPUNGE"))
    assert out == [b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    raw.cmd("STORE 1 +FLAGS (\\Deleted)")
    assert untagged(raw.cmd("UNSELECT")) == []
    assert status(raw.cmd("FETCH 1 FLAGS")) == b"BAD"
    raw.cmd("EXAMINE INBOX")
    assert b"[READ-ONLY]" in tagged(raw.cmd("EXPUNGE"))
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("CLOSE")) == []
    assert untagged(raw.cmd("STATUS INBOX (MESSAGES)"))[0].endswith(b"(MESSAGES 0)\r\n")
    assert status(raw.cmd("CHECK")) == b"BAD"


def test_imaplib_read_workflow(imap, srv):
    deliver(srv, message("imaplib"))
    typ, data = imap.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    typ, data = imap.uid("FETCH", "1", "(RFC822)")
    assert typ == "OK" and b"Subject: imaplib" in data[0][1]
    typ, data = imap.search(None, "SEEN")
    assert data == [b"1"]
    imap.store("1", "+FLAGS", "\\Deleted")
    typ, data = imap.expunge()
    assert data == [b"1"]
    assert imap.close()[0] == "OK"


def test_imaplib_literal_append_roundtrip(imap):
    data = message("roundtrip", body="caf\u00e9\r\n".encode().decode("latin-1"))
    typ, _ = imap.append("INBOX", None, imaplib.Time2Internaldate(0), data)
    assert typ == "OK"
    imap.select("INBOX")
    typ, fetched = imap.fetch("1", "(BODY.PEEK[])")
    assert fetched[0][1] == data
