"""Framed command -> Command (RFC 9051 §6, §9 and the extensions we advertise).

``parse`` raises ParseError (answered with BAD) for anything malformed; the tag, once valid,
is returned with the error so the BAD is tagged (RFC 9051 §7.1.3).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from typing import Any

from postroom.imap.fetch import parse_fetch
from postroom.imap.framer import extract_tag
from postroom.imap.reader import MAX_NUMBER64, ParseError, Reader
from postroom.imap.search import parse_search
from postroom.imap.seqset import SeqSet
from postroom.imap.sort import parse_sort, parse_thread

_MONTHS = {
    m: i
    for i, m in enumerate(
        (
            b"JAN",
            b"FEB",
            b"MAR",
            b"APR",
            b"MAY",
            b"JUN",
            b"JUL",
            b"AUG",
            b"SEP",
            b"OCT",
            b"NOV",
            b"DEC",
        ),
        1,
    )
}


class CommandError(Exception):
    """A malformed command; ``tag`` is None when even the tag could not be read."""

    def __init__(self, tag: str | None, message: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message


@dataclass(slots=True)
class Command:
    tag: str
    name: str  # upper-case; "UID FETCH" etc. for UID commands
    args: Any = None


@dataclass(frozen=True, slots=True)
class Login:
    userid: bytes
    password: bytes


@dataclass(frozen=True, slots=True)
class Authenticate:
    mechanism: str
    initial: bytes | None  # base64 text of the SASL-IR initial response (RFC 4959)


@dataclass(frozen=True, slots=True)
class Qresync:
    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    mailbox: bytes
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, slots=True)
class Create:
    mailbox: bytes
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rename:
    old: bytes
    new: bytes


@dataclass(frozen=True, slots=True)
class ListArgs:
    reference: bytes
    patterns: tuple[bytes, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] | None = None  # RETURN (STATUS (...)), RFC 5819
    extended: bool = False  # selection or return options were given (RFC 5258)
    lsub: bool = False


@dataclass(frozen=True, slots=True)
class StatusArgs:
    mailbox: bytes
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...]
    date: float | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Append:
    """One APPEND; several messages with MULTIAPPEND (RFC 3502 §6.3.11)."""

    mailbox: bytes
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class SetQuota:
    root: bytes
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class StoreArgs:
    seqset: SeqSet
    mode: str  # "+", "-" or ""
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class CopyArgs:
    seqset: SeqSet
    mailbox: bytes


@dataclass(slots=True)
class IdArgs:
    params: list[tuple[bytes, bytes | None]] | None = field(default_factory=list)


STATUS_ITEMS = frozenset(
    {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ",
     "DELETED-STORAGE"}  # RFC 9208 §4.2
)  # fmt: skip
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
SPECIAL_USE = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
MAX_ID_PARAMS = 30  # RFC 2971 §3.3
MAX_APPEND_MESSAGES = 1000  # messages in one MULTIAPPEND
MAX_QUOTA_RESOURCES = 16


def parse(lines: list[bytes], literals: list[bytes]) -> Command:
    """Parse one framed command; raises CommandError."""
    tag = extract_tag(lines[0])
    if tag is None:
        raise CommandError(None, "Missing or invalid tag")
    r = Reader(lines, literals, start=len(tag))
    try:
        r.sp()
        name = r.keyword()
        if name == "UID":
            r.sp()
            sub = r.keyword()
            if sub not in _UID_COMMANDS:
                raise ParseError("Unknown UID command")
            name = "UID " + sub
        fn = _PARSERS.get(name.removeprefix("UID "))
        if fn is None:
            raise ParseError("Unknown command")
        args = fn(r)
        r.end()
        if name == "UID EXPUNGE" and args is None:
            raise ParseError("UID EXPUNGE needs a UID set")  # RFC 4315 §2.1
        if name == "EXPUNGE" and args is not None:
            raise ParseError("Unexpected extra arguments")
    except ParseError as exc:
        raise CommandError(tag, str(exc)) from None
    return Command(tag, name, args)


# -- argument parsers ----------------------------------------------------------------------
def _none(r: Reader) -> None:
    return None


def _mailbox(r: Reader) -> bytes:
    r.sp()
    return r.astring()


def _login(r: Reader) -> Login:
    r.sp()
    user = r.astring()
    r.sp()
    return Login(user, r.astring())


def _authenticate(r: Reader) -> Authenticate:
    r.sp()
    mech = r.keyword()
    initial = None
    if not r.at_end():
        r.sp()
        initial = r.atom()  # base64 text, or "=" for an empty response (RFC 4959 §3)
    return Authenticate(mech, initial)


def _enable(r: Reader) -> list[str]:
    caps = []
    while not r.at_end():
        r.sp()
        caps.append(r.atom().decode("ascii", "replace").upper())
    if not caps:
        raise ParseError("ENABLE needs a capability")
    return caps


def _id(r: Reader) -> IdArgs:
    r.sp()
    if r.maybe(b"NIL"):
        return IdArgs(None)
    r.open_paren()
    params: list[tuple[bytes, bytes | None]] = []
    if not r.close_paren():
        while True:
            key = r.string()
            r.sp()
            params.append((key, r.nstring()))
            if len(params) > MAX_ID_PARAMS:
                raise ParseError("Too many ID parameters")
            if r.close_paren():
                break
            r.sp()
    return IdArgs(params)


def _select(r: Reader) -> Select:
    mailbox = _mailbox(r)
    condstore = False
    qresync = None
    if not r.at_end():
        r.sp()
        r.open_paren()
        while not r.close_paren():
            word = r.keyword()
            if word == "CONDSTORE":
                condstore = True
            elif word == "QRESYNC":
                qresync = _qresync(r)
            else:
                raise ParseError("Unknown SELECT parameter")
            if r.peek() == 0x20:
                r.sp()
    return Select(mailbox, condstore, qresync)


def _qresync(r: Reader) -> Qresync:
    """RFC 7162 §3.2.5: QRESYNC (uidvalidity modseq [known-uids [(seq-match)]])."""
    r.sp()
    r.open_paren()
    uidvalidity = r.nz_number()
    r.sp()
    modseq = r.nz_number(MAX_NUMBER64)
    known = None
    match = None
    if r.peek() == 0x20:
        r.sp()
        if r.peek() != 0x28:
            known = r.seqset()
            if r.peek() == 0x20:
                r.sp()
        if r.peek() == 0x28:
            r.open_paren()
            seqs = r.seqset()
            r.sp()
            uids = r.seqset()
            r.expect(b")")
            match = (seqs, uids)
    r.expect(b")")
    for s in (known, *(match or ())):
        if s is not None and s.saved:
            raise ParseError("$ is not allowed in QRESYNC")
    return Qresync(uidvalidity, modseq, known, match)


def _create(r: Reader) -> Create:
    mailbox = _mailbox(r)
    uses: tuple[str, ...] = ()
    if not r.at_end():
        # RFC 6154 §3: CREATE name (USE (\Sent))
        r.sp()
        r.open_paren()
        r.expect(b"USE ", "Unknown CREATE parameter")
        uses = tuple(r.paren_list(lambda: _special_use(r)))
        r.expect(b")")
    return Create(mailbox, uses)


def _special_use(r: Reader) -> str:
    r.expect(b"\\", "Expected a special-use attribute")
    word = "\\" + r.atom().decode("ascii", "replace")
    for name in SPECIAL_USE:
        if word.lower() == name.lower():
            return name
    raise ParseError("Unknown special-use attribute")


def _rename(r: Reader) -> Rename:
    old = _mailbox(r)
    return Rename(old, _mailbox(r))


def _list(r: Reader) -> ListArgs:
    """RFC 9051 §6.3.9 / RFC 5258: LIST [(sel)] ref (pattern | (patterns)) [RETURN (opts)]."""
    r.sp()
    selection: frozenset[str] = frozenset()
    extended = False
    if r.peek() == 0x28:
        extended = True
        selection = frozenset(r.paren_list(r.keyword))
        if not selection <= LIST_SELECTION:
            raise ParseError("Unknown LIST selection option")
        r.sp()
    reference = r.astring()
    r.sp()
    if r.peek() == 0x28:
        extended = True
        patterns = tuple(r.paren_list(r.list_mailbox))
        if not patterns:
            raise ParseError("Empty pattern list")
    else:
        patterns = (r.list_mailbox(),)
    returns: set[str] = set()
    status_items = None
    if not r.at_end():
        r.sp()
        r.expect(b"RETURN ")
        extended = True
        r.open_paren()
        while not r.close_paren():
            word = r.keyword()
            if word not in LIST_RETURN:
                raise ParseError("Unknown LIST return option")
            returns.add(word)
            if word == "STATUS":
                r.sp()
                status_items = _status_items(r)
            if r.peek() == 0x20:
                r.sp()
    if "RECURSIVEMATCH" in selection and selection == {"RECURSIVEMATCH"}:
        raise ParseError("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3
    return ListArgs(reference, patterns, selection, frozenset(returns), status_items, extended)


def _lsub(r: Reader) -> ListArgs:
    r.sp()
    reference = r.astring()
    r.sp()
    return ListArgs(reference, (r.list_mailbox(),), lsub=True)


def _status_items(r: Reader) -> tuple[str, ...]:
    items = tuple(r.paren_list(r.keyword))
    if not items or not set(items) <= STATUS_ITEMS:
        raise ParseError("Invalid STATUS item")
    return items


def _status(r: Reader) -> StatusArgs:
    mailbox = _mailbox(r)
    r.sp()
    return StatusArgs(mailbox, _status_items(r))


def parse_date_time(raw: bytes) -> float:
    """``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (RFC 9051 §9 date-time) -> epoch seconds."""
    try:
        day_part, time_part, zone = raw.removeprefix(b" ").split(b" ")
        day, month, year = day_part.split(b"-")
        hh, mm, ss = (int(x) for x in time_part.split(b":"))
        if len(zone) != 5 or zone[0:1] not in (b"+", b"-") or not zone[1:].isdigit():
            raise ValueError
        offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60
        if zone[0:1] == b"-":
            offset = -offset
        stamp = calendar.timegm((int(year), _MONTHS[month.upper()], int(day), hh, mm, ss, 0, 0, 0))
        if not (1 <= int(day) <= 31 and hh < 24 and mm < 60 and ss < 61):
            raise ValueError
    except (ValueError, KeyError, IndexError, OverflowError):
        raise ParseError("Invalid date-time") from None
    return float(stamp - offset)


def _append_message(r: Reader) -> AppendMessage:
    """append-opts SP append-data: [flag-list SP] [date-time SP] literal (RFC 3502 §6.3.11),
    the literal optionally wrapped as ``UTF8 (literal8)`` (RFC 6855 §4)."""
    flags: tuple[str, ...] = ()
    date = None
    if r.peek() == 0x28:
        flags = tuple(r.flag_list())
        r.sp()
    if r.peek() == 0x22:
        date = parse_date_time(r.quoted())
        r.sp()
    utf8 = r.maybe(b"UTF8 (")
    if not r.is_literal():
        raise ParseError("Expected the message as a literal")
    binary = r.peek() == 0x7E
    data = r.literal(allow_binary=True)
    if utf8:
        r.expect(b")")
    if not binary and 0 in data:
        raise ParseError("NUL in message; use literal8")  # RFC 3516 §4.4
    return AppendMessage(flags, date, data)


def _append(r: Reader) -> Append:
    mailbox = _mailbox(r)
    r.sp()
    messages = [_append_message(r)]
    while not r.at_end():  # MULTIAPPEND: 1*append-message (RFC 3502 §6.3.11)
        r.sp()
        messages.append(_append_message(r))
        if len(messages) > MAX_APPEND_MESSAGES:
            raise ParseError("Too many messages in one APPEND")
    return Append(mailbox, tuple(messages))


def _getquota(r: Reader) -> bytes:
    r.sp()
    return r.astring()


def _setquota(r: Reader) -> SetQuota:
    """RFC 9208 §4.1.3: SETQUOTA root (resource limit ...)."""
    r.sp()
    root = r.astring()
    r.sp()

    def resource() -> tuple[str, int]:
        name = r.keyword()
        r.sp()
        return name, r.number(MAX_NUMBER64)

    limits = tuple(r.paren_list(resource))
    if len(limits) > MAX_QUOTA_RESOURCES:
        raise ParseError("Too many quota resources")
    return SetQuota(root, limits)


def _compress(r: Reader) -> str:
    r.sp()
    return r.atom().decode("ascii", "replace").upper()


def _store(r: Reader) -> StoreArgs:
    r.sp()
    seqset = r.seqset()
    r.sp()
    unchangedsince = None
    if r.peek() == 0x28:
        # RFC 7162 §3.1.3: STORE set (UNCHANGEDSINCE n) ...
        r.open_paren()
        r.expect(b"UNCHANGEDSINCE ", "Unknown STORE modifier")
        unchangedsince = r.number(MAX_NUMBER64)
        r.expect(b")")
        r.sp()
    mode = ""
    if r.peek() in (0x2B, 0x2D):
        mode = chr(r.peek())
        r.pos += 1
    word = r.keyword()
    if word not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("Expected FLAGS")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        flags = [r.flag()]
        while not r.at_end():
            r.sp()
            flags.append(r.flag())
    return StoreArgs(seqset, mode, word == "FLAGS.SILENT", tuple(flags), unchangedsince)


def _copy(r: Reader) -> CopyArgs:
    r.sp()
    seqset = r.seqset()
    return CopyArgs(seqset, _mailbox(r))


def _seqset_arg(r: Reader) -> SeqSet:
    r.sp()
    return r.seqset()


def _expunge(r: Reader) -> SeqSet | None:
    return None if r.at_end() else _seqset_arg(r)


_PARSERS = {
    "CAPABILITY": _none,
    "NOOP": _none,
    "LOGOUT": _none,
    "STARTTLS": _none,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "ID": _id,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox,
    "UNSUBSCRIBE": _mailbox,
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _none,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _none,
    "CLOSE": _none,
    "UNSELECT": _none,
    "EXPUNGE": _expunge,
    "SEARCH": parse_search,
    "FETCH": parse_fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "IDLE": _none,
    "SORT": parse_sort,
    "THREAD": parse_thread,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _mailbox,
    "SETQUOTA": _setquota,
    "COMPRESS": _compress,
}
_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE", "SORT", "THREAD"})
