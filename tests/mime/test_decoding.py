"""Header text decoding (RFC 2047), parameters (RFC 2045, RFC 2231), addresses, IMAP strings."""

from __future__ import annotations

import base64
import zlib

import pytest

from postroom.mime.address import parse as addresses
from postroom.mime.params import parse_content_type, parse_disposition
from postroom.mime.wire import nstring, string
from postroom.mime.words import decode_header


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        # RFC 2047 §8 examples
        (b"=?ISO-8859-1?Q?a?=", "a"),
        (b"=?ISO-8859-1?Q?a?= b", "a b"),
        (b"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"),
        (b"=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=", "ab"),
        (b"=?ISO-8859-1?Q?a_b?=", "a b"),
        (b"=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b"),
        (b"(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        # a UTF-8 character split across two words
        (b"=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\u20ac"),
        # RFC 2231 §5 language suffix
        (b"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"),
        # unknown charset: raw bytes as UTF-8 / cp1252
        (b"=?x-nonsense?Q?caf=C3=A9?=", "caf\u00e9"),
        # codecs that are not linear-time text charsets are never used
        (b"=?punycode?Q?abc-?=", "abc-"),
        (b"=?unicode-escape?Q?=5Cu00e9?=", "\\u00e9"),
        # undeclared 8-bit: UTF-8 if valid, else Windows-1252
        ("d\u00e9j\u00e0".encode(), "d\u00e9j\u00e0"),
        ("d\u00e9j\u00e0".encode("cp1252"), "d\u00e9j\u00e0"),
        (b"=?utf-8?q?broken", "=?utf-8?q?broken"),
    ],
)
def test_decode_header(raw, text):
    assert decode_header(raw) == text


def test_bytes_codecs_are_never_charsets():
    packed = base64.b64encode(zlib.compress(b"decompressed")).decode()
    assert decode_header(f"=?zlib?B?{packed}?=".encode()) != "decompressed"
    assert decode_header(b"=?base64?Q?aGk=3D?=") == "aGk="


def test_utf7_surrogates_are_replaced():
    assert decode_header(b"=?utf-7?Q?+2D0-?=").encode("utf-8")


def test_content_type_params():
    ct = parse_content_type(
        b'Text/Plain (comment) ; charset="utf-8" ; format=flowed;;junk; x="a\\"b"'
    )
    assert ct is not None
    assert (ct.value, ct.subtype) == ("text", "plain")
    assert ct.params == ((b"CHARSET", b"utf-8"), (b"FORMAT", b"flowed"), (b"X", b'a"b'))
    assert ct.decoded == {"charset": "utf-8", "format": "flowed", "x": 'a"b'}


@pytest.mark.parametrize("raw", [b"", b"text", b"text/", b"/plain", b"te xt/plain", b"\xff/x"])
def test_invalid_content_type(raw):
    assert parse_content_type(raw) is None


def test_rfc2231_continuations_and_charsets():
    # RFC 2231 §3 and §4.1
    ct = parse_content_type(
        b"message/external-body; access-type=URL;"
        b' URL*0="ftp://";'
        b' URL*1="cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"'
    )
    assert ct.params[1] == (b"URL", b"ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar")
    d = parse_disposition(
        b"attachment; title*0*=us-ascii'en'This%20is%20even%20more%20;"
        b' title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2="isn\'t it!"'
    )
    assert d.value == "attachment"
    assert d.params == (
        (b"TITLE*", b"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!"),
    )
    assert d.decoded["title"] == "This is even more ***fun*** isn't it!"


def test_rfc2231_unencoded_first_segment_and_gaps():
    d = parse_disposition(b"inline; a*0=x%; a*1*=%41; b*0=one; b*2=three; c*x=1")
    assert d.params == ((b"A*", b"''x%25%41"), (b"B", b"one"))
    assert d.decoded == {"a": "x%A", "b": "one"}


def test_rfc2231_single_extended_in_utf8():
    d = parse_disposition(b"attachment; filename*=UTF-8''%E2%82%AC%20rates.txt")
    assert d.decoded["filename"] == "\u20ac rates.txt"


def test_rfc2047_in_parameter_for_the_index():
    ct = parse_content_type(b'application/pdf; name="=?utf-8?B?4oKsLnBkZg==?="')
    assert ct.params == ((b"NAME", b"=?utf-8?B?4oKsLnBkZg==?="),)
    assert ct.decoded["name"] == "\u20ac.pdf"


def test_address_edge_cases():
    assert addresses(b"") == []
    assert addresses(b",,,") == []
    assert addresses(b"<>") == [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]
    assert addresses(b'"quoted local"@x') == [(None, None, b'"quoted local"', b"x")]
    assert addresses(b"John Q. Public <jqp@x>") == [(b"John Q. Public", None, b"jqp", b"x")]
    assert addresses(b"g: a@b") == [
        (None, None, b"g", None),
        (None, None, b"a", b"b"),
        (None, None, None, None),
    ]
    assert addresses(b"(unterminated <a@b>") == []
    assert addresses(b"a@b (x (nested) y)") == [(b"x (nested) y", None, b"a", b"b")]


def test_imap_strings():
    assert string(b"plain") == b'"plain"'
    assert string(b'a"b\\c') == b'"a\\"b\\\\c"'
    assert string(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert string(b"\xc3\xa9") == b"{2}\r\n\xc3\xa9"
    assert string(b"a\x00b") == b'"ab"'
    assert nstring(None) == b"NIL"
    assert nstring(b"") == b'""'
