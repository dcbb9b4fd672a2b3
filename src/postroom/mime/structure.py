"""Split a message into its MIME part tree over byte offsets, in one pass (RFC 2045, RFC 2046).

Every part records where its header and body start and end in the message bytes, so that
sections are later cut from the stored bytes without parsing again. The splitter works on the
bytes directly (not the stdlib email parser) and moves forward only: a part ends at the next
delimiter line of any enclosing multipart (RFC 2046 §5.1.2: an outer boundary closes the inner
multiparts too), found through a chain of per-multipart searches (:class:`_Scope`).

Bounds enforced here:
- :data:`MAX_DEPTH` nesting levels by default (settings.limits.mime_depth, never more than
  :data:`HARD_DEPTH`, which keeps the splitter's recursion far from the interpreter's limit);
  multipart children and message/rfc822 bodies each add one; a multipart or message/rfc822 part
  at that depth is kept as one opaque leaf part.
- :data:`MAX_PARTS` parts per message (Dovecot's default); once reached, delimiters of the
  multipart being split are no longer recognised and the rest of it stays in its body.
- :data:`MAX_BOUNDARY` bytes per boundary (RFC 2046 §5.1.1 allows 70); a longer one is ignored.
"""

from __future__ import annotations

import re

from postroom.mime import headers
from postroom.mime.params import Structured, parse_content_type, parse_disposition
from postroom.mime.transfer import IDENTITY

MAX_DEPTH = 100
HARD_DEPTH = 200
MAX_PARTS = 10_000
MAX_BOUNDARY = 256

LEAF, MULTIPART, MESSAGE = 0, 1, 2

# Header fields kept per part: the MIME ones (RFC 2045 §3, RFC 2183, RFC 3066 / RFC 2557) and the
# ones the ENVELOPE and the header index need.
KEPT = frozenset(
    {
        b"content-type",
        b"content-transfer-encoding",
        b"content-disposition",
        b"content-id",
        b"content-description",
        b"content-md5",
        b"content-language",
        b"content-location",
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
        b"references",
    }
)

_BLANK = re.compile(rb"\n\r?\n")
_TOKEN = re.compile(rb"[ \t]*([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)")


class Part:
    """One node of the part tree; ``children`` index into the flat part list."""

    __slots__ = (
        "header_start",
        "body_start",
        "body_end",
        "kind",
        "children",
        "fields",
        "ctype",
        "subtype",
        "content_type",
        "encoding",
        "disposition",
        "boundary",
    )

    def __init__(self, header_start: int) -> None:
        self.header_start = header_start
        self.body_start = header_start
        self.body_end = header_start
        self.kind = LEAF
        self.children: list[int] = []
        self.fields: dict[bytes, bytes] = {}
        self.ctype = "text"
        self.subtype = "plain"
        self.content_type: Structured | None = None
        self.encoding = ""
        self.disposition: Structured | None = None
        self.boundary = b""


# RFC 2046 §5.1.1: delimiter := CRLF "--" boundary; close-delimiter adds "--"; transport
# padding (whitespace) may follow before the line break.
_TAIL = rb"(--)?[ \t]*\r?(?=\n|\Z)"

Found = tuple[re.Match[bytes], "_Scope"]


class _Scope:
    """The delimiter lines that end content inside one multipart: its own boundary's and,
    through ``parent``, those of every enclosing multipart (RFC 2046 §5.1.2).

    Each scope searches only for its own boundary, never past the next enclosing delimiter,
    and remembers its answer: positions only move forward, so a scope scans its region at most
    once and no pattern grows with the nesting depth. A chain never holds one boundary twice:
    an inner multipart that reuses an enclosing boundary claims its lines (innermost wins), so
    the enclosing scope is left out of the inner chain (see :meth:`without`).
    """

    __slots__ = ("boundary", "own", "parent", "limit", "names", "_from", "_found", "_clones")

    def __init__(
        self, boundary: bytes, own: re.Pattern[bytes], parent: _Scope | None, limit: int
    ) -> None:
        self.boundary = boundary
        self.own = own
        self.parent = parent
        self.limit = limit
        self.names = parent.names | {boundary} if parent else frozenset((boundary,))
        self._from = -1
        self._found: Found | None = None
        self._clones: dict[bytes, _Scope | None] | None = None

    def without(self, boundary: bytes) -> _Scope | None:
        """This chain minus the scope of ``boundary`` (copies are kept for reuse)."""
        if self.boundary == boundary:
            return self.parent
        if boundary not in self.names:
            return self
        if self._clones is None:
            self._clones = {}
        if boundary not in self._clones:
            assert self.parent is not None  # boundary is in names, so further up the chain
            rest = self.parent.without(boundary)
            self._clones[boundary] = _Scope(self.boundary, self.own, rest, self.limit)
        return self._clones[boundary]

    def next(self, data: bytes, pos: int) -> Found | None:
        """The first delimiter line at or after ``pos``; on one line the innermost wins."""
        found = self._found
        if 0 <= self._from <= pos and (found is None or pos <= found[0].start()):
            return found
        outer = self.parent.next(data, pos) if self.parent else None
        m = self.own.search(data, pos, outer[0].end() if outer else self.limit)
        if m is not None and (outer is None or m.start() <= outer[0].start()):
            found = (m, self)
        else:
            found = outer
        self._from, self._found = pos, found
        return found


def _boundary(ct: Structured) -> bytes:
    """The boundary parameter as sent (RFC 2046 §5.1.1), not RFC 2047-decoded."""
    for name, value in ct.params:
        if name == b"BOUNDARY":
            return value
    return ct.decoded.get("boundary", "").encode("utf-8")


def _cut(data: bytes, pos: int, low: int) -> int:
    """End of content before the delimiter's line break at ``pos`` (its CRLF belongs to it)."""
    if pos > low and data[pos - 1] == 13:
        pos -= 1
    return max(pos, low)


class _Splitter:
    def __init__(self, data: bytes, max_depth: int, max_fields: int) -> None:
        self.data = data
        self.max_depth = max(0, min(max_depth, HARD_DEPTH))
        self.max_fields = max_fields
        self.parts: list[Part] = []
        self.patterns: dict[bytes, re.Pattern[bytes]] = {}

    def scope(self, boundary: bytes, parent: _Scope | None, limit: int) -> _Scope:
        own = self.patterns.get(boundary)
        if own is None:
            line = rb"\n--(" + re.escape(boundary) + rb")" + _TAIL
            own = self.patterns[boundary] = re.compile(line)
        return _Scope(boundary, own, parent.without(boundary) if parent else None, limit)

    def part(
        self, start: int, limit: int, scope: _Scope | None, depth: int, digest: bool
    ) -> tuple[int, Found | None]:
        """Split the part at ``start``; returns its index and the delimiter that ended it."""
        data = self.data
        index = len(self.parts)
        p = Part(start)
        self.parts.append(p)
        term: Found | None = None
        if data.startswith(b"\n", start, limit):
            body_start = start + 1
        elif data.startswith(b"\r\n", start, limit):
            body_start = start + 2
        else:
            at = start - 1 if start and data[start - 1] == 10 else start
            nxt = scope.next(data, at) if scope else None
            # the blank line that ends the header, unless a delimiter line comes first
            blank = _BLANK.search(data, at, nxt[0].start() + 1 if nxt else limit)
            if blank is not None:
                body_start = blank.end()
            elif nxt is not None:  # the part is all header
                body_start = _cut(data, nxt[0].start(), start)
                term = nxt
            else:
                body_start = limit
        p.body_start = body_start
        body_limit = body_start if term else limit
        self._describe(p, start, body_start, depth, digest)

        if p.kind == MULTIPART:
            return index, self._multipart(p, body_limit, scope, depth) or term
        if p.kind == MESSAGE:
            child, inner = self.part(body_start, body_limit, scope, depth + 1, False)
            p.children.append(child)
            p.body_end = self.parts[child].body_end
            return index, inner or term
        if term is None and scope is not None and body_start < limit:
            term = scope.next(data, body_start - 1)
        p.body_end = _cut(data, term[0].start(), body_start) if term else body_limit
        return index, term

    def _describe(self, p: Part, start: int, body_start: int, depth: int, digest: bool) -> None:
        """Read the part's header fields and decide its kind (RFC 2045 §5.2 defaults)."""
        fields = p.fields
        for m in headers.fields(self.data, start, body_start, self.max_fields):
            name = m.group(1).lower()
            if name in KEPT and name not in fields:
                fields[name] = headers.unfold(m.group(2))
        raw = fields.get(b"content-type")
        ct = parse_content_type(raw) if raw is not None else None
        if ct is None:
            # RFC 2046 §5.1.5: in a multipart/digest the default is message/rfc822
            p.ctype, p.subtype = ("message", "rfc822") if digest else ("text", "plain")
        else:
            p.ctype, p.subtype = ct.value, ct.subtype
        p.content_type = ct
        cte = fields.get(b"content-transfer-encoding")
        if cte:
            # RFC 2045 §6.1: mechanism := token (comments after it are ignored)
            m = _TOKEN.match(cte)
            p.encoding = m.group(1).lower().decode("ascii") if m else ""
        disposition = fields.get(b"content-disposition")
        if disposition:
            p.disposition = parse_disposition(disposition)
        if depth >= self.max_depth:
            return
        if p.ctype == "multipart" and len(self.parts) < MAX_PARTS:
            boundary = _boundary(ct) if ct else b""
            if 0 < len(boundary) <= MAX_BOUNDARY:
                p.kind = MULTIPART
                p.boundary = boundary
        elif p.ctype == "message" and p.subtype == "rfc822" and p.encoding in IDENTITY:
            # RFC 2046 §5.2.1: only 7bit, 8bit or binary; anything else cannot be split.
            # message/global (RFC 6532) stays a basic part: RFC 9051 would send it with an
            # ENVELOPE, which IMAP4rev1 clients (RFC 3501 media-message) cannot parse, and
            # the precomputed form serves both.
            p.kind = MESSAGE

    def _multipart(self, p: Part, limit: int, outer: _Scope | None, depth: int) -> Found | None:
        """Split a multipart body; returns the enclosing delimiter that ends it, if any."""
        data = self.data
        inner = self.scope(p.boundary, outer, limit)
        digest = p.subtype == "digest"
        found = inner.next(data, p.body_start - 1) if p.body_start < limit else None
        term: Found | None = None
        while found is not None:
            m, owner = found
            if owner is not inner:  # an enclosing multipart's delimiter ends this one too
                term = found
                break
            if m.group(2) or len(self.parts) >= MAX_PARTS:
                # close-delimiter (or part budget spent): the epilogue runs to the next
                # delimiter of an enclosing multipart
                if outer is not None and m.end() < limit:
                    term = outer.next(data, m.end())
                break
            child, found = self.part(min(m.end() + 1, limit), limit, inner, depth + 1, digest)
            p.children.append(child)
        p.body_end = _cut(data, term[0].start(), p.body_start) if term else limit
        if not p.children:
            # RFC 9051 §9 body-type-mpart needs one body: an empty text/plain part stands in
            empty = Part(p.body_end)
            p.children.append(len(self.parts))
            self.parts.append(empty)
        return term


def split(
    data: bytes, max_depth: int = MAX_DEPTH, max_fields: int = headers.MAX_FIELDS
) -> list[Part]:
    """The part tree of ``data``; index 0 is the message itself."""
    splitter = _Splitter(data, max_depth, max_fields)
    splitter.part(0, len(data), None, 0, False)
    return splitter.parts
