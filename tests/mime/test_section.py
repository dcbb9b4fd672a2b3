"""BODY[section] (RFC 9051 §6.4.5), BINARY[part] (RFC 3516) and header_values."""

from __future__ import annotations

import pytest

from postroom.mime import binary, header_values, parse, section

MSG = (
    b"From: a@x.test\r\nTo: b@x.test\r\nSubject: parts\r\n"
    b"Content-Type: multipart/mixed; boundary=o\r\n\r\n"
    b"preamble\r\n"
    b"--o\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    b"--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
    b"--i\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9\r\n"
    b"--i\r\nContent-Type: text/html\r\n\r\n<p>cafe</p>\r\n"
    b"--i--\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nFrom: c@y.test\r\n\r\ninner body\r\n"
    b"--o\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAEC\r\n/w==\r\n"
    b"--o\r\nContent-Type: application/x-thing\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin\r\n"
    b"--o--\r\nepilogue\r\n"
)
HEADER = MSG[: MSG.index(b"\r\n\r\n") + 4]


@pytest.fixture(scope="module")
def parsed():
    return parse(MSG)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", MSG),
        ("HEADER", HEADER),
        ("TEXT", MSG[len(HEADER) :]),
        ("1", b"first"),
        ("1.MIME", b"Content-Type: text/plain\r\n\r\n"),
        ("2.1", b"caf=C3=A9"),
        (
            "2.1.MIME",
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        ),
        ("2.2", b"<p>cafe</p>"),
        (
            "2",
            b"--i\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"caf=C3=A9\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>cafe</p>\r\n--i--",
        ),
        ("3", b"Subject: inner\r\nFrom: c@y.test\r\n\r\ninner body"),
        ("3.HEADER", b"Subject: inner\r\nFrom: c@y.test\r\n\r\n"),
        ("3.TEXT", b"inner body"),
        ("3.1", b"inner body"),
        ("3.MIME", b"Content-Type: message/rfc822\r\n\r\n"),
        ("3.HEADER.FIELDS (FROM)", b"From: c@y.test\r\n\r\n"),
        ("4", b"AAEC\r\n/w=="),
        ("HEADER.FIELDS (SUBJECT from)", b"From: a@x.test\r\nSubject: parts\r\n\r\n"),
        ('HEADER.FIELDS ("To")', b"To: b@x.test\r\n\r\n"),
        (
            "HEADER.FIELDS.NOT (SUBJECT TO)",
            b"From: a@x.test\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n",
        ),
        ("header.fields (X-NONE)", b"\r\n"),
        ("header", HEADER),
    ],
)
def test_sections(parsed, spec, expected):
    assert section(MSG, parsed, spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "6",
        "0",
        "1.1.1.2",
        "2.3",
        "1.HEADER",
        "2.TEXT",
        "MIME",
        "HEADER.FIELDS",
        "HEADER.FIELDS ()",
        "TEXT (A)",
        "1.",
        ".1",
        "x",
        "01",
        "3.2",
        "99999999999",
    ],
)
def test_missing_or_malformed_sections(parsed, spec):
    assert section(MSG, parsed, spec) is None


def test_single_part_message_part_one_is_its_body():
    msg = b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n"
    p = parse(msg)
    assert section(msg, p, "1") == b"aGk=\r\n"
    assert section(msg, p, "1.MIME") == b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert section(msg, p, "2") is None
    assert binary(msg, p, "1") == b"hi"
    assert binary(msg, p, "") == b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\nhi"


def test_folded_field_is_returned_whole():
    msg = b"To: a@b,\r\n c@d\r\nX: 1\r\n\r\n"
    p = parse(msg)
    assert section(msg, p, "HEADER.FIELDS (TO)") == b"To: a@b,\r\n c@d\r\n\r\n"


def test_binary(parsed):
    assert binary(MSG, parsed, "4") == b"\x00\x01\x02\xff"
    assert binary(MSG, parsed, "2.1") == "caf\u00e9".encode()
    assert binary(MSG, parsed, "1") == b"first"
    assert binary(MSG, parsed, "3") == b"Subject: inner\r\nFrom: c@y.test\r\n\r\ninner body"
    assert binary(MSG, parsed, "") == MSG
    # RFC 3516 §4.3: an unknown encoding cannot be decoded (UNKNOWN-CTE)
    assert binary(MSG, parsed, "5") is None
    assert section(MSG, parsed, "5") == b"begin"
    assert binary(MSG, parsed, "7") is None
    assert binary(MSG, parsed, "1.x") is None


def test_lenient_base64():
    # RFC 2045 §6.8: characters outside the alphabet are ignored; a missing pad is tolerated
    msg = b"Content-Transfer-Encoding: base64\r\n\r\naGVs\r\n*bG8\r\nhIQ"
    assert binary(msg, parse(msg), "1") == b"hello!!"


def test_header_values():
    msg = (
        b"Received: one\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nreceived: two\r\n two-b\r\n\r\n"
        b"Received: body\r\n"
    )
    assert header_values(msg, "Received") == ["one", "two two-b"]
    assert header_values(msg, "subject") == ["caf\u00e9"]
    assert header_values(msg, "X-None") == []
    assert header_values(b"", "x") == []
