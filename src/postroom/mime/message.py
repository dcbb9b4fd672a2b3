"""Parse once, at delivery (DESIGN principle 4): everything FETCH and SEARCH need, precomputed.

:func:`parse` never raises. :class:`ParsedMessage` is stored per message with
:meth:`ParsedMessage.to_bytes`: the ENVELOPE, then a marshal'ed tuple of the other ready-made
wire forms and the part offsets, then the index text; each part is decoded only when asked
for, so loading many ENVELOPEs costs little.
"""

from __future__ import annotations

import marshal
import struct

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

_MAGIC = b"PRM2"
_MAGIC_1 = b"PRM1"  # the form before PRM2, still read
_u32 = struct.Struct(">I").unpack_from

# (header_start, body_start, body_end, kind, encoding, children) per part, root first
PartOffsets = tuple[int, int, int, int, str, tuple[int, ...]]


class ParsedMessage:
    """What a stored message is known by: wire forms, header index, date, preview, text.

    Loaded from its stored form, the ENVELOPE is at hand at once and the rest is decoded on
    first use: FETCH of many ENVELOPEs (every client's message list) decodes nothing else."""

    __slots__ = ("envelope", "_rest", "_stored", "_text", "_raw_text")

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
        self._rest: tuple | None = (bodystructure, body, headers, sent_date, preview, parts)
        self._stored: tuple[bytes, int] | None = None  # (stored form, offset of the rest)
        self._text = text
        self._raw_text = raw_text

    def _decoded(self) -> tuple:
        if self._rest is None:
            assert self._stored is not None
            data, at = self._stored
            end = at + 4 + _u32(data, at)[0]
            self._rest = marshal.loads(memoryview(data)[at + 4 : end])
            self._raw_text = memoryview(data)[end:]
            self._stored = None
        return self._rest

    @property
    def bodystructure(self) -> bytes:
        return self._decoded()[0]

    @property
    def body(self) -> bytes:
        return self._decoded()[1]

    @property
    def headers(self) -> dict[str, str]:
        return self._decoded()[2]

    @property
    def sent_date(self) -> float | None:
        return self._decoded()[3]

    @property
    def preview(self) -> str:
        return self._decoded()[4]

    @property
    def parts(self) -> tuple[PartOffsets, ...]:
        return self._decoded()[5]

    @property
    def text(self) -> str:
        """Decoded text of the text/* parts, bounded, for the full-text index."""
        if self._text is None:
            self._decoded()
            self._text = str(self._raw_text, "utf-8")
        return self._text

    def to_bytes(self, *, with_text: bool = True) -> bytes:
        """The stored form: the ENVELOPE, the rest marshal'ed, then the index text.
        ``with_text=False`` leaves the text out (for a store that keeps it in its full-text
        index anyway); such a form loads with an empty ``text``."""
        head = marshal.dumps(self._decoded(), 4)
        text = self.text.encode("utf-8") if with_text else b""
        return b"".join(
            (
                _MAGIC,
                len(self.envelope).to_bytes(4, "big"),
                self.envelope,
                len(head).to_bytes(4, "big"),
                head,
                text,
            )
        )

    @classmethod
    def from_bytes(cls, b: bytes) -> ParsedMessage:
        magic = b[:4]
        if magic == _MAGIC and len(b) >= 12:
            end = 8 + _u32(b, 4)[0]
            msg = cls.__new__(cls)
            msg.envelope = b[8:end]
            msg._rest, msg._stored, msg._text, msg._raw_text = None, (b, end), None, b""
            return msg
        if magic == _MAGIC_1 and len(b) >= 8:  # written before the envelope came first
            size = _u32(b, 4)[0]
            view = memoryview(b)
            env, bs, body, hdrs, date, preview, parts = marshal.loads(view[8 : 8 + size])
            return cls(env, bs, body, hdrs, date, preview, None, parts, view[8 + size :])
        raise ValueError("not a stored ParsedMessage")

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
