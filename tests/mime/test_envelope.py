"""ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) against hand-checked expectations."""

from __future__ import annotations

import marshal

import pytest

from postroom.mime import ParsedMessage, parse

RFC3501_HEADER = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)


def test_rfc3501_example():
    # RFC 3501 §8 (the FETCH example), with the ABNF's adjacency of addresses (no space)
    p = parse(RFC3501_HEADER + b"Hello\r\n")
    assert p.envelope == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_missing_headers_are_nil():
    p = parse(b"X-Other: 1\r\n\r\nbody")
    assert p.envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert p.headers == {}
    assert p.sent_date is None


def test_empty_message():
    p = parse(b"")
    assert p.envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert (
        p.bodystructure
        == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
    )


def test_sender_and_reply_to_explicit():
    p = parse(
        b'From: a@x.test\r\nSender: b@x.test\r\nReply-To: "C, D" <c@x.test>\r\n'
        b"In-Reply-To: <1@x>\r\n\r\n"
    )
    assert p.envelope == (
        b'(NIL NIL ((NIL NIL "a" "x.test")) ((NIL NIL "b" "x.test")) '
        b'(("C, D" NIL "c" "x.test")) NIL NIL NIL "<1@x>" NIL)'
    )


def test_empty_sender_defaults_to_from():
    # RFC 3501 §7.4.2: absent *or empty* Sender/Reply-To take the From value
    p = parse(b"From: a@x.test\r\nSender:\r\nReply-To:  \r\n\r\n")
    from_ = b'((NIL NIL "a" "x.test"))'
    assert p.envelope == b"(NIL NIL %s %s %s NIL NIL NIL NIL NIL)" % (from_, from_, from_)


def test_groups():
    # RFC 5322 §A.1.3
    p = parse(
        b"From: Pete <pete@silly.example>\r\n"
        b"To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n"
        b"Cc: Undisclosed recipients:;\r\n\r\n"
    )
    assert p.envelope == (
        b'(NIL NIL (("Pete" NIL "pete" "silly.example")) (("Pete" NIL "pete" "silly.example")) '
        b'(("Pete" NIL "pete" "silly.example")) '
        b'((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")'
        b'("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)) '
        b'((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)'
    )


def test_comments_route_and_missing_parts():
    # RFC 5322 §A.5 (comments), §A.6.1 (obsolete route); a trailing comment names a bare address
    p = parse(
        b"From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n"
        b"To: <@node.test,@x.test:mary@example.net>, jdoe@example.org (John Doe), nobody\r\n\r\n"
    )
    env = p.envelope
    assert b'(("Pete" NIL "pete" "silly.test"))' in env
    assert (
        b'((NIL "@node.test,@x.test" "mary" "example.net")("John Doe" NIL "jdoe" "example.org")'
        b'(NIL NIL "nobody" "MISSING_DOMAIN"))'
    ) in env


def test_encoded_words_stay_raw_but_index_is_decoded():
    p = parse(
        b"Subject: =?UTF-8?B?SGVsbG8g4oKs?= =?utf-8?q?_world?=\r\n"
        b"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n\r\n"
    )
    assert p.envelope.startswith(
        b'(NIL "=?UTF-8?B?SGVsbG8g4oKs?= =?utf-8?q?_world?=" '
        b'(("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be"))'
    )
    assert p.headers["subject"] == "Hello \u20ac world"
    assert p.headers["from"] == "Andr\u00e9 Pirard <PIRARD@vm1.ulg.ac.be>"


def test_eight_bit_and_quotes_use_literals_and_escapes():
    subject = "Gr\u00fc\u00dfe".encode()
    p = parse(b"Subject: " + subject + b'\r\nFrom: "a \\"q\\" b" <x@y>\r\n\r\n')
    assert p.envelope.startswith(b"(NIL {7}\r\n" + subject + b" ")
    assert b'(("a \\"q\\" b" NIL "x" "y"))' in p.envelope
    assert p.headers["subject"] == "Gr\u00fc\u00dfe"


def test_folded_values_are_unfolded():
    p = parse(b"Subject: one\r\n two\r\n\tthree\r\nTo: a@b,\r\n c@d\r\n\r\n")
    assert p.envelope.startswith(b'(NIL "one two\tthree" ')
    assert b'((NIL NIL "a" "b")(NIL NIL "c" "d"))' in p.envelope
    assert p.headers["subject"] == "one two\tthree"


def test_first_occurrence_wins_and_date():
    p = parse(b"Subject: first\r\nSubject: second\r\nDate: Thu, 1 Jan 1970 00:01:00 +0000\r\n\r\n")
    assert p.headers["subject"] == "first"
    assert p.sent_date == 60.0
    assert parse(b"Date: not a date\r\n\r\n").sent_date is None
    assert parse(b"Date: Thu, 1 Jan 1970 01:00:00 -0000\r\n\r\n").sent_date == 3600.0


def test_bare_lf_message():
    p = parse(b"From: a@b\nSubject: lf\n\nbody\n")
    assert p.headers == {"from": "a@b", "subject": "lf"}
    assert p.bodystructure.startswith(b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1')


def test_stored_form_round_trips_with_and_without_text():
    p = parse(RFC3501_HEADER + b"Hello\r\n")
    q = ParsedMessage.from_bytes(p.to_bytes())
    assert q == p and q.text == "Hello\r\n" and q.headers == p.headers
    r = ParsedMessage.from_bytes(p.to_bytes(with_text=False))
    assert (r.envelope, r.body, r.parts, r.text) == (p.envelope, p.body, p.parts, "")
    with pytest.raises(ValueError):
        ParsedMessage.from_bytes(b"junk")


def test_stored_form_of_earlier_releases_still_loads():
    """PRM1 (before the ENVELOPE was stored first): one marshal'ed tuple, then the text."""
    p = parse(RFC3501_HEADER + b"Hello\r\n")
    head = marshal.dumps(
        (p.envelope, p.bodystructure, p.body, p.headers, p.sent_date, p.preview, p.parts), 4
    )
    old = b"PRM1" + len(head).to_bytes(4, "big") + head + b"Hello\r\n"
    q = ParsedMessage.from_bytes(old)
    assert q == p and q.text == "Hello\r\n"


def test_envelope_loads_without_decoding_the_rest():
    p = parse(RFC3501_HEADER + b"Hello\r\n")
    q = ParsedMessage.from_bytes(p.to_bytes())
    assert q.envelope == p.envelope and q._rest is None
    assert q.bodystructure == p.bodystructure and q._rest is not None
