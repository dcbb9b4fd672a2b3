"""Content-Type and Content-Disposition values (RFC 2045 §5.1, RFC 2183 §2, RFC 2231).

Bounds enforced here: at most :data:`MAX_STRUCTURED` bytes of one such value are parsed, and at
most :data:`MAX_PARAMS` parameter entries (each RFC 2231 continuation segment counts as one);
continuation numbers above :data:`MAX_SECTION` are ignored.

Parameters are kept in two forms: for BODYSTRUCTURE, names upper-cased with RFC 2231
continuations merged into one value (``NAME*`` keeps the charset'language'%XX encoding, as
Dovecot does; segments after a missing number are dropped); for the index, lower-case names to
decoded text.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from postroom.mime.words import MAX_DECODE, decode_charset, decode_header

MAX_STRUCTURED = 64 * 1024
MAX_PARAMS = 1_000
MAX_SECTION = 999

_TOKEN = rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"  # RFC 2045 §5.1 token
_TYPE = re.compile(rb"[ \t]*(" + _TOKEN + rb")[ \t]*/[ \t]*(" + _TOKEN + rb")[ \t]*")
_WORD = re.compile(rb"[ \t]*(" + _TOKEN + rb")[ \t]*")
_PARAM = re.compile(
    rb"[ \t]*;[ \t]*(" + _TOKEN + rb')[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"?|([^;"]*))', re.S
)
_COMMENT = re.compile(rb'("(?:[^"\\]|\\.)*"?)|\((?:[^()\\]|\\.)*\)?', re.S)
_ESCAPED = re.compile(rb"\\(.)", re.S)


class Structured(NamedTuple):
    """A parsed Content-Type (``value``/``subtype``) or Content-Disposition (``value`` only)."""

    value: str
    subtype: str
    params: tuple[tuple[bytes, bytes], ...]
    decoded: dict[str, str]


def _strip_comments(value: bytes) -> bytes:
    # RFC 2045 §5.1 allows RFC 822 comments between the tokens; quoted strings are kept.
    return _COMMENT.sub(lambda m: m.group(1) or b" ", value)


def parse_content_type(value: bytes) -> Structured | None:
    """``type/subtype *(; param)``; None when syntactically invalid (RFC 2045 §5.2 default)."""
    value = value[:MAX_STRUCTURED]
    if b"(" in value:
        value = _strip_comments(value)
    m = _TYPE.match(value)
    if m is None:
        return None
    params, decoded = _params(value, m.end())
    return Structured(
        m.group(1).decode("ascii").lower(), m.group(2).decode("ascii").lower(), params, decoded
    )


def parse_disposition(value: bytes) -> Structured | None:
    """``disposition-type *(; param)`` (RFC 2183 §2); None when there is no type token."""
    value = value[:MAX_STRUCTURED]
    if b"(" in value:
        value = _strip_comments(value)
    m = _WORD.match(value)
    if m is None:
        return None
    params, decoded = _params(value, m.end())
    return Structured(m.group(1).decode("ascii").lower(), "", params, decoded)


def _params(value: bytes, pos: int) -> tuple[tuple[tuple[bytes, bytes], ...], dict[str, str]]:
    raw: list[tuple[bytes, bytes]] = []
    end = len(value)
    while pos < end and len(raw) < MAX_PARAMS:
        m = _PARAM.match(value, pos)
        if m is None:
            nxt = value.find(b";", pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        quoted = m.group(2)
        if quoted is not None:
            val = _ESCAPED.sub(rb"\1", quoted) if b"\\" in quoted else quoted
        else:
            val = m.group(3).strip(b" \t")
        raw.append((m.group(1).lower(), val))
        pos = m.end()
    return _merge(raw)


def _merge(
    raw: list[tuple[bytes, bytes]],
) -> tuple[tuple[tuple[bytes, bytes], ...], dict[str, str]]:
    """RFC 2231 §3/§4: join ``name*0``, ``name*1*``... in order from 0; ``*`` marks encoding."""
    order: list[bytes] = []
    simple: dict[bytes, bytes] = {}
    sections: dict[bytes, dict[int, tuple[bytes, bool]]] = {}
    for attr, val in raw:
        star = attr.find(b"*")
        name = attr if star < 0 else attr[:star]
        if name not in simple and name not in sections:
            order.append(name)
        if star < 0:
            simple.setdefault(name, val)
            continue
        rest = attr[star + 1 :]
        if not rest:
            number, extended = 0, True
        else:
            extended = rest.endswith(b"*")
            digits = rest[:-1] if extended else rest
            if not digits.isdigit() or len(digits) > 3 or int(digits) > MAX_SECTION:
                continue
            number = int(digits)
        sections.setdefault(name, {}).setdefault(number, (val, extended))
    wire: list[tuple[bytes, bytes]] = []
    decoded: dict[str, str] = {}
    for name in order:
        key = name.decode("ascii").lower()
        if name in simple:
            wire.append((name.upper(), simple[name]))
            decoded[key] = decode_header(simple[name])
        parts = sections.get(name)
        if not parts or 0 not in parts:
            continue
        segments = []
        n = 0
        while n in parts:
            segments.append(parts[n])
            n += 1
        extended = any(ext for _, ext in segments)
        if extended:
            # as Dovecot's rfc2231_parse: unencoded segments get "%" escaped, and an unencoded
            # first segment gets an empty charset'language' prefix
            value = b"".join(v if ext else v.replace(b"%", b"%25") for v, ext in segments)
            if not segments[0][1]:
                value = b"''" + value
            wire.append((name.upper() + b"*", value))
            decoded[key] = _decode_extended(segments)
        else:
            value = b"".join(v for v, _ in segments)
            wire.append((name.upper(), value))
            decoded[key] = decode_header(value)
    return tuple(wire), decoded


def _decode_extended(segments: list[tuple[bytes, bool]]) -> str:
    """RFC 2231 §4: the first encoded segment carries ``charset'language'``."""
    charset = ""
    out = bytearray()
    for i, (val, ext) in enumerate(segments):
        if not ext:
            out += val
            continue
        if i == 0 and val.count(b"'") >= 2:
            cs, _lang, val = val.split(b"'", 2)
            charset = cs.decode("ascii", "replace")
        out += unquote_to_bytes(val)
        if len(out) > MAX_DECODE:
            break
    return decode_charset(bytes(out[:MAX_DECODE]), charset or None)
