"""A neutral search query tree that every store backend compiles (SQL, or Python).

IMAP SEARCH is parsed into this tree by the IMAP layer, which has already turned sequence
numbers, ``$`` (RFC 5182) and \\Recent into UID sets, so the tree names only stored facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class All:
    """Matches every message."""


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Query


@dataclass(frozen=True, slots=True)
class UidIn:
    """UIDs in inclusive ranges ``((lo, hi), ...)``."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class HasFlag:
    """A system flag (``\\Seen``) or keyword; keywords compare case-insensitively."""

    flag: str


@dataclass(frozen=True, slots=True)
class Header:
    """Case-insensitive substring of a header's decoded value.  ``name`` is lower-case; an empty
    ``text`` matches every message that has the field (RFC 9051 §6.4.4)."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Body:
    """Substring of the decoded body text (full-text index)."""

    text: str


@dataclass(frozen=True, slots=True)
class Text:
    """Substring of headers or body (full-text index)."""

    text: str


@dataclass(frozen=True, slots=True)
class Size:
    """RFC822.SIZE compared with ``op`` ``"<"`` (SMALLER) or ``">"`` (LARGER)."""

    op: str
    octets: int


@dataclass(frozen=True, slots=True)
class InternalDate:
    """BEFORE / ON / SINCE on the internal date; ``op`` is ``"<"``, ``"="`` or ``">="``.
    Dates compare in the server's time zone disregarding time (RFC 9051 §6.4.4)."""

    op: str
    day: date


@dataclass(frozen=True, slots=True)
class SentDate:
    """SENTBEFORE / SENTON / SENTSINCE on the Date: header."""

    op: str
    day: date


@dataclass(frozen=True, slots=True)
class ModSeq:
    """MODSEQ n (RFC 7162 §3.1.5): messages whose modseq >= n."""

    at_least: int


Query = (
    All
    | And
    | Or
    | Not
    | UidIn
    | HasFlag
    | Header
    | Body
    | Text
    | Size
    | InternalDate
    | SentDate
    | ModSeq
)
