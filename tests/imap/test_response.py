from __future__ import annotations

from postroom.imap import response


def test_strings():
    assert response.string("abc") == b'"abc"'
    assert response.string('a"b\\c') == b'"a\\"b\\\\c"'
    assert response.string("a\r\nb") == b"{4}\r\na\r\nb"
    assert response.string("caf\u00e9") == b"{5}\r\ncaf\xc3\xa9"
    assert response.string(b"a\0b") == b'"ab"'
    assert response.nstring(None) == b"NIL"
    assert response.astring("INBOX") == b"INBOX"
    assert response.astring("a b") == b'"a b"'
    assert response.astring("NIL") == b'"NIL"'
    assert response.astring("") == b'""'


def test_text_never_carries_line_breaks():
    out = response.tagged("a1", "NO", "Mailbox x\r\n* BYE injected\0 does not exist")
    assert out.count(b"\r\n") == 1 and out.endswith(b"\r\n") and b"\0" not in out


def test_tagged_with_code():
    assert response.tagged("a", "OK", "done", "UIDNEXT 5") == b"a OK [UIDNEXT 5] done\r\n"
    assert response.tagged(None, "BAD", "x") == b"* BAD x\r\n"


def test_number_set_and_date():
    assert response.number_set([1, 2, 3, 5, 7, 8]) == b"1:3,5,7:8"
    assert response.number_set([]) == b""
    assert response.date_time(837570265) == b'"17-Jul-1996 02:24:25 +0000"'
