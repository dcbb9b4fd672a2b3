"""What a stored message says, parsed once, after it was acknowledged (DESIGN principle 4).

Storing a message keeps its bytes and a ``blobs`` row whose ``meta`` is empty
(``UNDESCRIBED``), with its id in ``fts_pending``.  Its description is made later: the parse
result FETCH serves (ENVELOPE, BODYSTRUCTURE, preview), the columns SEARCH and SORT read and
the text SEARCH matches.  The background step makes it (textindex.py), or the first FETCH or
SEARCH that needs it before that; ``record`` keeps whichever comes first, so a message is
still parsed once.  Parsing is most of the CPU that storing a message costs, and the client
waiting for its 250 or OK gains nothing from waiting for it too.

A message too large to be kept in the database (sqlite.INLINE_MAX) is parsed before its
commit instead, on the I/O thread that writes its file: its commit waits for that file's
fsyncs anyway, and the background step, in the main process, would otherwise parse megabytes
at once in front of every other write of that process.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from postroom import mime
from postroom.config import Limits
from postroom.mime.dates import sent_day

UNDESCRIBED = b""  # blobs.meta of a message not parsed yet

MAX_HEADER_COLUMN = 4096  # characters of a header value kept for SEARCH
MAX_INDEXED_HEADER = 65536  # bytes of the raw header section in the full-text index
_UNSEARCHED_FIELDS = frozenset(
    {
        "received",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "x-google-dkim-signature",
        "received-spf",
    }
)


@dataclass(slots=True)
class Description:
    meta: bytes  # ParsedMessage.to_bytes(with_text=False)
    columns: tuple[Any, ...]  # subject, from, to, cc, bcc, message-id, sent date, sent day
    headers_text: str
    body_text: str  # empty when body_at says where the stored message holds it as it is
    body_at: int | None
    text: str  # the body's text, whichever way it is kept


def describe(data: bytes, inline: bool, limits: Limits) -> Description:
    """Parse a stored message; ``inline``: its bytes are kept in the database, so a body
    that is its own text is not stored twice (schema version 5)."""
    parsed = mime.parse(data, max_depth=limits.mime_depth, max_fields=limits.mime_headers)
    headers = parsed.headers
    columns = (
        *(_folded(headers.get(name)) for name in ("subject", "from", "to", "cc", "bcc")),
        _folded(headers.get("message-id")),
        parsed.sent_date,
        sent_day(headers.get("date")),
    )
    headers_text = "\n".join([*headers.values(), *_searchable_fields(data)])
    text = parsed.text
    body_at = _raw_text_at(data, parsed.parts[0][1], text) if inline else None
    body_text = "" if body_at is not None else text
    meta = parsed.to_bytes(with_text=False)
    return Description(meta, columns, headers_text, body_text, body_at, text)


def record(conn: sqlite3.Connection, blob: int, sha256: str, description: Description) -> bool:
    """Keep the description of an undescribed blob; False when the blob went, or was
    described meanwhile (by the background step or another reader)."""
    described = conn.execute(
        "UPDATE blobs SET meta = ?, subject = ?, from_addr = ?, to_addr = ?, cc_addr = ?,"
        " bcc_addr = ?, message_id = ?, sent_date = ?, sent_day = ?"
        " WHERE id = ? AND sha256 = ? AND meta = ?",
        (description.meta, *description.columns, blob, sha256, UNDESCRIBED),
    ).rowcount
    if described:
        conn.execute(
            "INSERT INTO texts (blob, headers, body, body_at) VALUES (?, ?, ?, ?)",
            (blob, description.headers_text, description.body_text, description.body_at),
        )
    return bool(described)


def _folded(value: str | None) -> str | None:
    return None if value is None else value.casefold()[:MAX_HEADER_COLUMN]


def _searchable_fields(data: bytes) -> list[str]:
    """Raw top-level header fields for SEARCH TEXT (RFC 9051 §6.4.4: header or body),
    without the trace and signature fields machines add (Received, DKIM-Signature, ARC-*,
    ...): nobody searches them, and their base64 would triple the index of a typical message.
    The decoded values of the usual fields come from the parse result."""
    head = data[:MAX_INDEXED_HEADER]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            head = head[:end]
            break
    fields: list[str] = []
    keep = False
    for line in head.decode("utf-8", "replace").splitlines():
        if line[:1] in (" ", "\t"):
            if keep:
                fields[-1] += line
            continue
        name = line.partition(":")[0].strip().lower()
        keep = not (name in _UNSEARCHED_FIELDS or name.startswith("arc-"))
        if keep:
            fields.append(line)
    return fields


def _raw_text_at(data: bytes, body_start: int, text: str) -> int | None:
    """``body_start`` when the message's text is its raw body as it is (UTF-8), so the
    stored message stands in for a copy of it (schema version 5); else None."""
    if text and len(text) <= len(data) - body_start == len(encoded := text.encode("utf-8")):
        return body_start if data[body_start:] == encoded else None
    return None
