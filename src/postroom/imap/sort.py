"""SORT (RFC 5256 §3, DISPLAYFROM/DISPLAYTO from RFC 5957) and the argument parsing of SORT
and THREAD (sans-IO).

Sort keys come from what delivery precomputed (DESIGN principle 4): the ENVELOPE's first
addresses, the decoded Subject and the Date: as epoch seconds; no message is re-parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from postroom.imap.envelope import first_address
from postroom.imap.reader import ParseError, Reader
from postroom.imap.search import parse_charset, parse_keys
from postroom.imap.subject import base_subject, casemap
from postroom.mime import ParsedMessage
from postroom.mime.words import decode_header

SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
MAX_CRITERIA = 16


@dataclass(frozen=True, slots=True)
class SortArgs:
    criteria: tuple[tuple[str, bool], ...]  # (key, reverse)
    charset: str
    query: object  # as SearchArgs.query


@dataclass(frozen=True, slots=True)
class ThreadArgs:
    algorithm: str
    charset: str
    query: object


def parse_sort(r: Reader) -> SortArgs:
    """After ``SORT``: SP "(" [REVERSE SP] key *(SP [REVERSE SP] key) ")" SP charset SP keys."""
    r.sp()
    r.open_paren()
    criteria: list[tuple[str, bool]] = []
    while True:
        word = r.keyword()
        reverse = word == "REVERSE"
        if reverse:
            r.sp()
            word = r.keyword()
        if word not in SORT_KEYS:
            raise ParseError("Unknown sort criterion")
        criteria.append((word, reverse))
        if len(criteria) > MAX_CRITERIA:
            raise ParseError("Too many sort criteria")
        if r.close_paren():
            break
        r.sp()
    r.sp()
    charset = parse_charset(r)  # RFC 5256 §3: the charset is mandatory
    r.sp()
    return SortArgs(tuple(criteria), charset, parse_keys(r))


def parse_thread(r: Reader) -> ThreadArgs:
    """After ``THREAD``: SP algorithm SP charset SP keys (RFC 5256 §3)."""
    r.sp()
    algorithm = r.keyword()
    if algorithm not in THREAD_ALGORITHMS:
        raise ParseError("Unknown threading algorithm")
    r.sp()
    charset = parse_charset(r)
    r.sp()
    return ThreadArgs(algorithm, charset, parse_keys(r))


@dataclass(slots=True)
class SortInfo:
    """What SORT and THREAD know of one message.  Everything but ``pos`` depends on the
    message alone, so records are cached and shared between sessions (``at`` gives a
    session's copy); derived keys are computed on first use and kept in ``keys``."""

    pos: int  # 0-based position in the session's view (message sequence number - 1)
    uid: int
    arrival: float  # INTERNALDATE
    size: int
    sent: float  # Date: in UTC, else the INTERNALDATE (RFC 5256 §3 DATE)
    subject: str = ""  # the decoded Subject
    envelope: bytes = b""  # for the address keys
    message_id: str | None = None
    references: tuple[str, ...] = ()  # References, else the first In-Reply-To id
    keys: dict[str, str] = field(default_factory=dict)  # derived keys computed so far


MAX_REFS = 256  # message ids kept from one References field (the last ones)
_MSG_ID = re.compile(r"<([^<>]*)>")
_SPACE = re.compile(r"\s+")


def message_ids(value: str) -> list[str]:
    """Message ids of a field, whitespace removed (folding may split them)."""
    return [i for m in _MSG_ID.findall(value) if (i := _SPACE.sub("", m))]


def describe(pos: int, uid: int, arrival: float, size: int, parsed: ParsedMessage) -> SortInfo:
    """A message's SortInfo from the metadata computed at delivery."""
    headers = parsed.headers
    sent = parsed.sent_date if parsed.sent_date is not None else arrival
    ids = message_ids(headers.get("message-id", ""))
    refs = message_ids(headers.get("references", ""))[-MAX_REFS:]
    if not refs:
        refs = message_ids(headers.get("in-reply-to", ""))[:1]
    return SortInfo(
        pos, uid, arrival, size, sent, headers.get("subject", ""), parsed.envelope,
        ids[0] if ids else None, tuple(refs),
    )  # fmt: skip


def at(info: SortInfo, pos: int) -> SortInfo:
    """The record at another position (the derived keys are shared)."""
    return SortInfo(
        pos, info.uid, info.arrival, info.size, info.sent, info.subject, info.envelope,
        info.message_id, info.references, info.keys,
    )  # fmt: skip


def _mailbox(envelope: bytes, field_name: str) -> str:
    """RFC 5256 §3: the addr-mailbox of the first address, compared with i;ascii-casemap."""
    addr = first_address(envelope, field_name)
    if addr is None or addr[2] is None:
        return ""
    return casemap(addr[2].decode("utf-8", "replace"))


def _display(envelope: bytes, field_name: str) -> str:
    """RFC 5957 §3: the decoded display name of the first address, or its addr-spec."""
    addr = first_address(envelope, field_name)
    if addr is None:
        return ""
    name, _, mailbox, host = addr
    if name:
        shown = decode_header(name).strip()
        if shown:
            return casemap(shown)
    return casemap(((mailbox or b"") + b"@" + (host or b"")).decode("utf-8", "replace"))


_DERIVED: dict[str, Callable[[SortInfo], str]] = {
    "SUBJECT": lambda i: casemap(base_subject(i.subject)[0]),
    "FROM": lambda i: _mailbox(i.envelope, "from"),
    "TO": lambda i: _mailbox(i.envelope, "to"),
    "CC": lambda i: _mailbox(i.envelope, "cc"),
    "DISPLAYFROM": lambda i: _display(i.envelope, "from"),
    "DISPLAYTO": lambda i: _display(i.envelope, "to"),
}


def derived(info: SortInfo, name: str) -> str:
    """A string sort key (SUBJECT and the address keys), computed once per message."""
    value = info.keys.get(name)
    if value is None:
        value = info.keys[name] = _DERIVED[name](info)
    return value


def _key(name: str) -> Callable[[SortInfo], object]:
    if name == "ARRIVAL":
        return lambda i: i.arrival
    if name == "DATE":
        return lambda i: i.sent
    if name == "SIZE":
        return lambda i: i.size
    return lambda i: derived(i, name)


def sort(infos: Sequence[SortInfo], criteria: Sequence[tuple[str, bool]]) -> list[SortInfo]:
    """Messages in the order of ``criteria``; REVERSE flips only its own key, and messages
    equal on every key keep mailbox order (RFC 5256 §3).  Stable sorts applied from the last
    criterion to the first give exactly that (``reverse=True`` keeps stability)."""
    out = sorted(infos, key=lambda i: i.pos)
    for name, reverse in reversed(criteria):
        key = _key(name)
        values = [key(i) for i in out]
        order = sorted(range(len(out)), key=values.__getitem__, reverse=reverse)
        out = [out[j] for j in order]
    return out
