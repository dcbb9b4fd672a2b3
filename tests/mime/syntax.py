"""A strict reader for the IMAP data forms the MIME layer emits, to check them in tests.

Reads ``(``, ``)``, ``NIL``, numbers, quoted strings and literals (RFC 9051 §4) into Python
values, then checks ENVELOPE and BODY/BODYSTRUCTURE shapes against the RFC 9051 §9 grammar.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_LITERAL = re.compile(rb"\{([0-9]+)\}\r\n")


class Str(bytes):
    """A string (quoted or literal), distinct from NIL (None) and numbers (int)."""


def read(data: bytes) -> object:
    value, pos = _value(data, 0)
    assert pos == len(data), f"trailing data at {pos}: {data[pos : pos + 40]!r}"
    return value


def _value(data: bytes, pos: int) -> tuple[object, int]:
    c = data[pos : pos + 1]
    if c == b"(":
        items: list[object] = []
        pos += 1
        while data[pos : pos + 1] != b")":
            if items and data[pos : pos + 1] == b" ":
                pos += 1
            item, pos = _value(data, pos)
            items.append(item)
        return items, pos + 1
    if data.startswith(b"NIL", pos):
        return None, pos + 3
    if c == b'"':
        m = _QUOTED.match(data, pos)
        assert m, f"bad quoted string at {pos}: {data[pos : pos + 40]!r}"
        assert m.group(1).isascii()
        return Str(re.sub(rb"\\(.)", rb"\1", m.group(1))), m.end()
    if c == b"{":
        m = _LITERAL.match(data, pos)
        assert m, f"bad literal at {pos}"
        end = m.end() + int(m.group(1))
        assert end <= len(data)
        assert b"\0" not in data[m.end() : end]
        return Str(data[m.end() : end]), end
    m = _NUMBER.match(data, pos)
    assert m, f"unexpected {data[pos : pos + 40]!r} at {pos}"
    return int(m.group()), m.end()


def _nstring(v: object) -> None:
    assert v is None or isinstance(v, Str), v


def _params(v: object) -> None:
    if v is None:
        return
    assert isinstance(v, list) and v and len(v) % 2 == 0, v
    for item in v:
        assert isinstance(item, Str)


def _address_list(v: object) -> None:
    if v is None:
        return
    assert isinstance(v, list) and v
    for address in v:
        assert isinstance(address, list) and len(address) == 4
        for field in address:
            _nstring(field)


def check_envelope(v: object) -> None:
    assert isinstance(v, list) and len(v) == 10, v
    for i in (0, 1, 8, 9):
        _nstring(v[i])
    for i in range(2, 8):
        _address_list(v[i])


def check_body(v: object, extended: bool) -> int:
    """Validate one body; returns how many leaf-or-message parts it has."""
    assert isinstance(v, list) and v
    if isinstance(v[0], list):
        k = 0
        count = 0
        while isinstance(v[k], list):
            count += check_body(v[k], extended)
            k += 1
        assert isinstance(v[k], Str)  # subtype
        rest = v[k + 1 :]
        if extended:
            assert len(rest) == 4
            _params(rest[0])
            _extension(rest[1:])
        else:
            assert rest == []
        return count
    ctype, subtype, params, cid, desc, enc, octets = v[:7]
    assert isinstance(ctype, Str) and isinstance(subtype, Str) and isinstance(enc, Str)
    _params(params)
    _nstring(cid)
    _nstring(desc)
    assert isinstance(octets, int)
    rest = v[7:]
    if ctype.upper() == b"MESSAGE" and subtype.upper() == b"RFC822":
        check_envelope(rest[0])
        check_body(rest[1], extended)
        assert isinstance(rest[2], int)
        rest = rest[3:]
    elif ctype.upper() == b"TEXT":
        assert isinstance(rest[0], int)
        rest = rest[1:]
    if extended:
        assert len(rest) == 4
        _nstring(rest[0])
        _extension(rest[1:])
    else:
        assert rest == []
    return 1


def _extension(v: list[object]) -> None:
    dsp, lang, loc = v
    if dsp is not None:
        assert isinstance(dsp, list) and len(dsp) == 2 and isinstance(dsp[0], Str)
        _params(dsp[1])
    if isinstance(lang, list):
        assert lang and all(isinstance(t, Str) for t in lang)
    else:
        _nstring(lang)
    _nstring(loc)
