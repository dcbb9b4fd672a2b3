"""Parse once, at delivery (DESIGN principle 4): everything FETCH and SEARCH need, precomputed.

:func:`parse` never raises. :class:`ParsedMessage` is stored per message with
:meth:`ParsedMessage.to_bytes`: a marshal'ed tuple of the ready-made wire forms and the part
offsets, followed by the index text, which is decoded only when asked for, so loading many
ENVELOPEs costs little.
"""

from __future__ import annotations

import marshal

from postroom.mime.bodystructure import build
from postroom.mime.dates import parse_date
from postroom.mime.envelope import envelope
from postroom.mime.headers import MAX_FIELDS
from postroom.mime.structure import MAX_DEPTH, Part, split
from postroom.mime.text import extract
from postroom.mime.words import decode_header

# Header fields decoded into ParsedMessage.headers (first occurrence of each).
INDEXED = (
    b"from",
    b"to",
    b"cc",
    b"bcc",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"sender",
    b"reply-to",
)

_MAGIC = b"PRM1"

# (header_start, body_start, body_end, kind, encoding, children) per part, root first
PartOffsets = tuple[int, int, int, int, str, tuple[int, ...]]


class ParsedMessage:
    """What a stored message is known by: wire forms, header index, date, preview, text."""

    __slots__ = (
        "envelope",
        "bodystructure",
        "body",
        "headers",
        "sent_date",
        "preview",
        "parts",
        "_text",
        "_raw_text",
    )

    def __init__(
        self,
        envelope: bytes,
        bodystructure: bytes,
        body: bytes,
        headers: dict[str, str],
        sent_date: float | None,
        preview: str,
        text: str | None,
        parts: tuple[PartOffsets, ...],
        raw_text: bytes | memoryview = b"",
    ) -> None:
        self.envelope = envelope
        self.bodystructure = bodystructure
        self.body = body
        self.headers = headers
        self.sent_date = sent_date
        self.preview = preview
        self.parts = parts
        self._text = text
        self._raw_text = raw_text

    @property
    def text(self) -> str:
        """Decoded text of the text/* parts, bounded, for the full-text index."""
        if self._text is None:
            self._text = str(self._raw_text, "utf-8")
        return self._text

    def to_bytes(self, *, with_text: bool = True) -> bytes:
        """The stored form. ``with_text=False`` leaves the index text out (for a store that
        keeps it in its full-text index anyway); such a form loads with an empty ``text``."""
        head = marshal.dumps(
            (
                self.envelope,
                self.bodystructure,
                self.body,
                self.headers,
                self.sent_date,
                self.preview,
                self.parts,
            ),
            4,
        )
        text = self.text.encode("utf-8") if with_text else b""
        return _MAGIC + len(head).to_bytes(4, "big") + head + text

    @classmethod
    def from_bytes(cls, b: bytes) -> ParsedMessage:
        if not b.startswith(_MAGIC) or len(b) < 8:
            raise ValueError("not a stored ParsedMessage")
        size = int.from_bytes(b[4:8], "big")
        env, bs, body, hdrs, date, preview, parts = marshal.loads(b[8 : 8 + size])
        return cls(env, bs, body, hdrs, date, preview, None, parts, memoryview(b)[8 + size :])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedMessage):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ParsedMessage(envelope={self.envelope[:80]!r}..., parts={len(self.parts)})"


def _offsets(parts: list[Part]) -> tuple[PartOffsets, ...]:
    return tuple(
        (p.header_start, p.body_start, p.body_end, p.kind, p.encoding, tuple(p.children))
        for p in parts
    )


def parse(
    data: bytes, *, max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS
) -> ParsedMessage:
    """Parse a whole message (bytes as stored). Never raises; any input gives a structure.

    ``max_depth`` and ``max_fields`` are settings.limits.mime_depth and .mime_headers."""
    data = bytes(data)
    parts = split(data, max_depth, max_fields)
    root = parts[0]
    fields = root.fields
    bodystructure, body = build(data, parts)
    headers = {
        name.decode("ascii"): decode_header(fields[name]) for name in INDEXED if name in fields
    }
    date = fields.get(b"date")
    text, preview = extract(data, parts)
    return ParsedMessage(
        envelope(fields),
        bodystructure,
        body,
        headers,
        parse_date(date) if date else None,
        preview,
        text,
        _offsets(parts),
    )
