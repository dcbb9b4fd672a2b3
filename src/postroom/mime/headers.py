"""Header blocks over bytes: where a header ends, its fields, unfolding (RFC 5322 §2.2).

Bound enforced here: at most :data:`MAX_FIELDS` fields of one header block are looked at
(settings.limits.mime_headers at delivery); later fields remain in the stored bytes and in
BODY[HEADER], but not in the index, the ENVELOPE, BODY[HEADER.FIELDS] or header_values().
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice

MAX_FIELDS = 10_000

# RFC 5322 §2.2 / §3.6.8: field-name = 1*ftext (printable US-ASCII except ":"); §4.5 obs-syntax
# allows whitespace before the colon. A field continues on lines that start with WSP (§2.2.3).
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_BLANK = re.compile(rb"\n\r?\n")


def header_end(data: bytes, start: int = 0, limit: int | None = None) -> int:
    """Offset just past the blank line that ends the header starting at ``start`` (or ``limit``)."""
    if limit is None:
        limit = len(data)
    if data.startswith(b"\n", start, limit):
        return start + 1
    if data.startswith(b"\r\n", start, limit):
        return start + 2
    m = _BLANK.search(data, start, limit)
    return m.end() if m else limit


def unfold(value: bytes) -> bytes:
    """RFC 5322 §2.2.3: unfolding removes the CRLF of each fold; outer whitespace is trimmed."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip(b" \t\r")


def fields(data: bytes, start: int, end: int, limit: int = MAX_FIELDS) -> Iterator[re.Match[bytes]]:
    """The first ``limit`` fields of ``data[start:end]``; group 1 is the name, 2 the folded
    value. Lines that are not fields (no colon) are skipped."""
    return islice(_FIELD.finditer(data, start, end), limit)


def span_end(data: bytes, m: re.Match[bytes], end: int) -> int:
    """End of a field's raw bytes including its line terminator (for BODY[HEADER.FIELDS])."""
    stop = m.end()
    return stop + 1 if stop < end and data[stop] == 10 else stop
