"""IMAP body sections cut from the stored bytes (RFC 9051 §6.4.5 BODY[...], RFC 3516 BINARY[...]).

Partial ranges ``<o.n>`` are the IMAP layer's job; these functions return whole sections.
"""

from __future__ import annotations

import re

from postroom.mime import headers
from postroom.mime.message import ParsedMessage, PartOffsets
from postroom.mime.structure import LEAF, MESSAGE, MULTIPART
from postroom.mime.transfer import decode
from postroom.mime.words import decode_header

_SPEC = re.compile(
    r"((?:[1-9][0-9]{0,8}\.)*[1-9][0-9]{0,8})?"
    r"(?:(?:^|(?<=[0-9])\.)(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    r"[ \t]*(?:\((.*)\))?[ \t]*",
    re.S | re.I,
)
_FIELD_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)', re.S)


def _find(parts: tuple[PartOffsets, ...], path: list[int]) -> int | None:
    """Index of the part a part number names (the algorithm of Dovecot's imap_msgpart_find)."""
    index = 0
    for k, number in enumerate(path):
        part = parts[index]
        if part[3] == MULTIPART:
            children = part[5]
            if number > len(children):
                return None
            index = children[number - 1]
        elif number != 1:
            # RFC 9051 §6.4.5: a non-multipart message or part has only part 1, its body
            return None
        # descending into a message/rfc822 part addresses the encapsulated message's parts
        if parts[index][3] == MESSAGE and k + 1 < len(path):
            index = parts[index][5][0]
    return index


def _header_fields(data: bytes, start: int, end: int, names: set[bytes], keep: bool) -> bytes:
    out = []
    for m in headers.fields(data, start, end):
        if (m.group(1).lower() in names) == keep:
            out.append(data[m.start() : headers.span_end(data, m, end)])
    # RFC 9051 §6.4.5: the returned header fields end with the blank line
    out.append(b"\r\n")
    return b"".join(out)


def section(data: bytes, parsed: ParsedMessage, spec: str) -> bytes | None:
    """The bytes of BODY[spec], e.g. "", "HEADER", "TEXT", "1.2", "2.MIME", "3.HEADER",
    "HEADER.FIELDS (FROM TO)"; None when the part does not exist or the spec is malformed."""
    m = _SPEC.fullmatch(spec.strip())
    if m is None:
        return None
    numbers, text, names = m.group(1), (m.group(2) or "").upper(), m.group(3)
    if (names is not None) != text.startswith("HEADER.FIELDS"):
        return None
    parts = parsed.parts
    path = [int(n) for n in numbers.split(".")] if numbers else []
    index = _find(parts, path)
    if index is None:
        return None
    part = parts[index]
    if not text:
        return data if not path else data[part[1] : part[2]]
    if text == "MIME":
        # the MIME header of the part, with its blank line
        return data[part[0] : part[1]] if path else None
    if path:
        # RFC 9051 §6.4.5: HEADER and TEXT after a part number only for message/rfc822 parts
        if part[3] != MESSAGE:
            return None
        part = parts[part[5][0]]
    if text == "HEADER":
        return data[part[0] : part[1]]
    if text == "TEXT":
        return data[part[1] : part[2]]
    wanted = {
        (q or a).encode("ascii", "replace").lower() for q, a in _FIELD_NAME.findall(names or "")
    }
    if not wanted:
        return None
    return _header_fields(data, part[0], part[1], wanted, text == "HEADER.FIELDS")


def binary(data: bytes, parsed: ParsedMessage, part: str) -> bytes | None:
    """BINARY[part]: the section with its Content-Transfer-Encoding undone (RFC 3516 §4.2).

    None when the part does not exist or its encoding is unknown; the IMAP layer tells the two
    apart with :func:`section` (RFC 3516 §4.3: UNKNOWN-CTE)."""
    spec = part.strip()
    if spec and not all(n.isdigit() and n[0] != "0" and len(n) < 10 for n in spec.split(".")):
        return None
    parts = parsed.parts
    path = [int(n) for n in spec.split(".")] if spec else []
    index = _find(parts, path)
    if index is None:
        return None
    p = parts[index]
    if p[3] != LEAF:
        return data if not path else data[p[1] : p[2]]
    body = decode(data[p[1] : p[2]], p[4])
    if body is not None and not path:
        # a single-part message: its header stays, its body is decoded
        return data[p[0] : p[1]] + body
    return body


def header_values(data: bytes, name: str) -> list[str]:
    """Decoded values of every ``name`` field of the top-level header, in order."""
    wanted = name.lower().encode("ascii", "replace")
    end = headers.header_end(data)
    return [
        decode_header(headers.unfold(m.group(2)))
        for m in headers.fields(data, 0, end)
        if m.group(1).lower() == wanted
    ]
