"""SEARCH keys of RFC 3501 §6.4.4, RFC 9051 §6.4.4 and RFC 7162 §3.1.5 -> the neutral query
tree of ``postroom.store.query``.

Parsing leaves three kinds of node that only the session can answer — message sequence
numbers, UID sets with ``*`` or ``$`` (RFC 5182), and \\Recent — and ``resolve`` turns them
into ``UidIn`` against the session's view before the store sees the query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from postroom.imap import seqset
from postroom.imap.reader import MAX_NUMBER64, ParseError, Reader
from postroom.imap.seqset import SeqSet
from postroom.store.query import (
    All,
    And,
    Body,
    HasFlag,
    Header,
    InternalDate,
    ModSeq,
    Not,
    Or,
    Query,
    SentDate,
    Size,
    Text,
    UidIn,
)

MAX_DEPTH = 64  # nesting of NOT / OR / parentheses
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})  # RFC 4731 §3.1, RFC 5182
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
NOTHING = UidIn(((0, 0),))  # UID 0 never exists


@dataclass(frozen=True, slots=True)
class SeqMatch:
    """Message sequence numbers (or ``$``)."""

    seqset: SeqSet


@dataclass(frozen=True, slots=True)
class UidMatch:
    """A UID set (or ``$``)."""

    seqset: SeqSet


@dataclass(frozen=True, slots=True)
class Recent:
    """\\Recent: session state (RFC 3501 §2.3.2), never stored."""


@dataclass(frozen=True, slots=True)
class SearchArgs:
    returns: tuple[str, ...] | None  # None: no RETURN, plain SEARCH response (rev1)
    charset: str | None
    query: object  # Query with SeqMatch / UidMatch / Recent nodes


_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "DELETED": "\\Deleted",
    "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged",
    "SEEN": "\\Seen",
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_OPS = {"BEFORE": "<", "ON": "=", "SINCE": ">="}


def parse_date(r: Reader) -> date:
    """date = date-text / DQUOTE date-text DQUOTE; date-text = day "-" month "-" year."""
    raw = r.quoted() if r.peek() == 0x22 else r.atom()
    try:
        day, month, year = raw.decode("ascii").split("-")
        return date(int(year), _MONTHS[month.upper()], int(day))
    except (ValueError, KeyError, UnicodeDecodeError):
        raise ParseError("Invalid date") from None


def _text(r: Reader) -> str:
    return r.astring().decode("utf-8", "replace")


def parse_key(r: Reader, depth: int = 0) -> object:
    if depth > MAX_DEPTH:
        raise ParseError("Search too complex")
    b = r.peek()
    if b == 0x28:
        r.pos += 1
        keys = [parse_key(r, depth + 1)]
        while not r.close_paren():
            r.sp()
            keys.append(parse_key(r, depth + 1))
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if 0x30 <= b <= 0x39 or b in (0x2A, 0x24):
        return SeqMatch(r.seqset())
    word = r.keyword()
    if word == "ALL":
        return All()
    if word in _FLAG_KEYS:
        return HasFlag(_FLAG_KEYS[word])
    if word.startswith("UN") and word[2:] in _FLAG_KEYS:
        return Not(HasFlag(_FLAG_KEYS[word[2:]]))
    if word in _HEADER_KEYS:
        r.sp()
        return Header(_HEADER_KEYS[word], _text(r))
    if word in _DATE_OPS:
        r.sp()
        return InternalDate(_DATE_OPS[word], parse_date(r))
    if word.startswith("SENT") and word[4:] in _DATE_OPS:
        r.sp()
        return SentDate(_DATE_OPS[word[4:]], parse_date(r))
    if word == "BODY":
        r.sp()
        return Body(_text(r))
    if word == "TEXT":
        r.sp()
        return Text(_text(r))
    if word == "HEADER":
        r.sp()
        name = r.astring().decode("ascii", "replace").lower()
        r.sp()
        return Header(name, _text(r))
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        key = HasFlag(r.flag())
        return key if word == "KEYWORD" else Not(key)
    if word in ("LARGER", "SMALLER"):
        r.sp()
        return Size(">" if word == "LARGER" else "<", r.number(MAX_NUMBER64))
    if word == "NOT":
        r.sp()
        return Not(parse_key(r, depth + 1))
    if word == "OR":
        r.sp()
        left = parse_key(r, depth + 1)
        r.sp()
        return Or((left, parse_key(r, depth + 1)))
    if word == "UID":
        r.sp()
        return UidMatch(r.seqset())
    if word == "RECENT":
        return Recent()
    if word == "NEW":
        return And((Recent(), Not(HasFlag("\\Seen"))))
    if word == "OLD":
        return Not(Recent())
    if word == "MODSEQ":
        # RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
        r.sp()
        if r.peek() == 0x22:
            r.quoted()
            r.sp()
            r.expect_any((b"PRIV", b"SHARED", b"ALL"))
            r.sp()
        return ModSeq(r.number(MAX_NUMBER64))
    raise ParseError("Unknown search key")


def parse_search(r: Reader) -> SearchArgs:
    """After ``SEARCH``: [RETURN (opts)] [CHARSET cs] key *(SP key)."""
    r.sp()
    returns: tuple[str, ...] | None = None
    charset = None
    if r.maybe(b"RETURN "):
        opts = r.paren_list(r.keyword)
        for opt in opts:
            if opt not in RETURN_OPTIONS:
                raise ParseError("Unknown RETURN option")
        returns = tuple(opts)
        r.sp()
    if r.maybe(b"CHARSET "):
        charset = parse_charset(r)
        r.sp()
    return SearchArgs(returns, charset, parse_keys(r))


def parse_charset(r: Reader) -> str:
    return r.astring().decode("ascii", "replace").upper()


def parse_keys(r: Reader) -> object:
    """search-key *(SP search-key), up to the end of the command: one key or their And."""
    keys = [parse_key(r)]
    while not r.at_end():
        r.sp()
        keys.append(parse_key(r))
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def uses_modseq(node: object) -> bool:
    """Whether the MODSEQ key appears (RFC 7162 §3.1.5: the response then carries MODSEQ)."""
    if isinstance(node, ModSeq):
        return True
    if isinstance(node, And | Or):
        return any(uses_modseq(p) for p in node.parts)
    if isinstance(node, Not):
        return uses_modseq(node.part)
    return False


def uid_set(uids: Sequence[int]) -> Query:
    """UidIn over ascending uids, compressed into ranges."""
    if not uids:
        return NOTHING
    ranges: list[tuple[int, int]] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u != prev + 1:
            ranges.append((start, prev))
            start = u
        prev = u
    ranges.append((start, prev))
    return UidIn(tuple(ranges))


def resolve(
    node: object, uids: Sequence[int], saved: Sequence[int], recent: Sequence[int]
) -> Query:
    """Replace session nodes by UidIn: ``uids`` is the session's ascending UID map,
    ``saved`` the SEARCHRES result and ``recent`` the session's \\Recent uids.  Raises
    seqset.OutOfRange for sequence numbers beyond the mailbox."""
    if isinstance(node, SeqMatch | UidMatch):
        if node.seqset.saved:
            return uid_set(saved)
        if isinstance(node, UidMatch):
            top = uids[-1] if uids else 0
            ranges = seqset.uid_ranges(node.seqset, top)
            return UidIn(tuple(ranges)) if ranges else NOTHING
        picked = []
        for lo, hi in seqset.seq_positions(node.seqset, len(uids)):
            picked.append((uids[lo], uids[hi - 1]))
        return UidIn(tuple(picked)) if picked else NOTHING
    if isinstance(node, Recent):
        return uid_set(sorted(recent))
    if isinstance(node, And):
        return And(tuple(resolve(p, uids, saved, recent) for p in node.parts))
    if isinstance(node, Or):
        return Or(tuple(resolve(p, uids, saved, recent) for p in node.parts))
    if isinstance(node, Not):
        return Not(resolve(node.part, uids, saved, recent))
    return node  # type: ignore[return-value]


def flag_predicate(node: object) -> Callable[[frozenset[str]], bool] | None:
    """A predicate over a message's flags when the query names flags only (UNSEEN, FLAGGED
    NOT DELETED, ...), so the session can answer from its flag cache without the store;
    None otherwise.  Keywords compare case-insensitively, as in the store."""
    if isinstance(node, All):
        return lambda flags: True
    if isinstance(node, HasFlag):
        want = node.flag.lower()
        return lambda flags: any(f.lower() == want for f in flags)
    if isinstance(node, Not):
        inner = flag_predicate(node.part)
        return None if inner is None else (lambda flags: not inner(flags))
    if isinstance(node, And | Or):
        parts = [flag_predicate(p) for p in node.parts]
        if any(p is None for p in parts):
            return None
        combine = all if isinstance(node, And) else any
        return lambda flags: combine(p(flags) for p in parts)  # type: ignore[misc]
    return None
