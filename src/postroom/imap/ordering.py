"""SORT and THREAD (RFC 5256, RFC 5957) and their UID forms: search like SEARCH, then order
the matches from the metadata computed at delivery (``Message.meta``), never the blobs."""

from __future__ import annotations

import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from postroom.imap import response, thread
from postroom.imap.messages import search_positions
from postroom.imap.parser import Command
from postroom.imap.seqset import OutOfRange
from postroom.imap.sort import SortArgs, SortInfo, ThreadArgs, at, describe, sort
from postroom.mime import ParsedMessage
from postroom.store.base import Store

if TYPE_CHECKING:
    from postroom.imap.session import Session

BATCH = 512  # messages per store round trip
CHARSETS = ("UTF-8", "US-ASCII")
# Sort records kept per process, by mailbox (most recently sorted first); a message never
# changes, so a record stays valid as long as its UID does.  About 0.5-1 KiB each.
CACHE_MESSAGES = 100_000

# Answers kept per process: an answer depends only on the (immutable) messages matched and
# their positions, so it is keyed by exactly those and never needs invalidating; a changed
# mailbox (append, expunge, flag change altering the matches) simply gives another key.
CACHE_ANSWERS = 32
CACHE_ANSWER_BYTES = 16 << 20  # keys and answers together

_cache: weakref.WeakKeyDictionary[Store, OrderedDict[tuple[int, int], dict[int, SortInfo]]] = (
    weakref.WeakKeyDictionary()
)
_answers: weakref.WeakKeyDictionary[Store, OrderedDict[tuple, bytes]] = weakref.WeakKeyDictionary()


def _records(store: Store, mailbox_id: int, uidvalidity: int) -> dict[int, SortInfo]:
    mailboxes = _cache.setdefault(store, OrderedDict())
    key = (mailbox_id, uidvalidity)
    records = mailboxes.pop(key, None)
    mailboxes[key] = records = records if records is not None else {}
    return records


def _trim(store: Store) -> None:
    """Forget the least recently sorted mailboxes beyond CACHE_MESSAGES records."""
    mailboxes = _cache.get(store)
    if mailboxes is None:
        return
    total = sum(len(r) for r in mailboxes.values())
    while total > CACHE_MESSAGES and mailboxes:
        _, records = mailboxes.popitem(last=False)
        total -= len(records)


async def _infos(s: Session, positions: list[int]) -> list[SortInfo]:
    """SortInfo of the messages at ``positions``: cached records, the others built from
    the stored metadata."""
    view = s.view
    assert view is not None
    records = _records(s.store, view.mailbox_id, view.uidvalidity)
    missing = [u for i in positions if (u := view.uids[i]) not in records]
    for start in range(0, len(missing), BATCH):
        for msg in await s.store.fetch(view.mailbox_id, missing[start : start + BATCH]):
            parsed = ParsedMessage.from_bytes(msg.meta)
            records[msg.uid] = describe(0, msg.uid, msg.internaldate, msg.size, parsed)
    out = []
    uids = view.uids
    for i in positions:
        rec = records.get(uids[i])
        if rec is None:
            continue  # expunged by another session, not yet announced
        if rec.pos != i:  # positions change only with expunges: keep the positioned record
            rec = records[rec.uid] = at(rec, i)
        out.append(rec)
    _trim(s.store)
    return out


def _answer_key(s: Session, cmd: Command, spec: object, positions: list[int]) -> tuple:
    """What an answer depends on: the mailbox, the command (its UID form answers with UIDs,
    the other with positions), the UIDs matched and, for sequence numbers, their positions."""
    view = s.view
    assert view is not None
    uids = array("I", map(view.uids.__getitem__, positions)).tobytes()
    where = b"" if cmd.name.startswith("UID ") else array("I", positions).tobytes()
    return (view.mailbox_id, view.uidvalidity, cmd.name, spec, uids, where)


def _remember(store: Store, key: tuple, line: bytes) -> None:
    """Keep an answer; forget the least recently used beyond the bounds."""
    answers = _answers.setdefault(store, OrderedDict())
    answers[key] = line
    total = sum(len(k[4]) + len(k[5]) + len(v) for k, v in answers.items())
    while len(answers) > 1 and (len(answers) > CACHE_ANSWERS or total > CACHE_ANSWER_BYTES):
        k, v = answers.popitem(last=False)
        total -= len(k[4]) + len(k[5]) + len(v)


async def _answer(
    s: Session, cmd: Command, charset: str, query: object, spec: object,
    compute: Callable[[list[SortInfo], bool], bytes],
) -> bytes:  # fmt: skip
    """Send the untagged answer computed by ``compute(matches, uid_form)`` (or remembered
    from an identical earlier question) and return the tagged completion or refusal."""
    if charset not in CHARSETS:
        code = "BADCHARSET (" + " ".join(CHARSETS) + ")"
        return response.tagged(cmd.tag, "NO", "Unsupported charset", code)
    try:
        positions = await search_positions(s, query)
    except OutOfRange:
        return response.tagged(cmd.tag, "BAD", "Invalid message sequence number")
    key = _answer_key(s, cmd, spec, positions)
    answers = _answers.get(s.store)
    line = answers.get(key) if answers is not None else None
    if line is None:
        line = compute(await _infos(s, positions), cmd.name.startswith("UID "))
        _remember(s.store, key, line)
    else:
        answers.move_to_end(key)
    s.send(response.untagged(line))
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


async def cmd_sort(s: Session, cmd: Command) -> bytes:
    """RFC 5256 §3: ``* SORT`` with sequence numbers (UIDs for UID SORT) in sort order."""
    args: SortArgs = cmd.args

    def compute(infos: list[SortInfo], uid: bool) -> bytes:
        ordered = sort(infos, args.criteria)
        numbers = [i.uid for i in ordered] if uid else [i.pos + 1 for i in ordered]
        return b" ".join([b"SORT", *(b"%d" % n for n in numbers)])

    return await _answer(s, cmd, args.charset, args.query, args.criteria, compute)


async def cmd_thread(s: Session, cmd: Command) -> bytes:
    """RFC 5256 §3: ``* THREAD`` with the threads of the matching messages."""
    args: ThreadArgs = cmd.args

    def compute(infos: list[SortInfo], uid: bool) -> bytes:
        if args.algorithm == "REFERENCES":
            roots = thread.references(infos)
        else:
            roots = thread.ordered_subject(infos)
        return thread.render(roots, (lambda i: i.uid) if uid else (lambda i: i.pos + 1))

    return await _answer(s, cmd, args.charset, args.query, args.algorithm, compute)


HANDLERS = {
    "SORT": cmd_sort,
    "UID SORT": cmd_sort,
    "THREAD": cmd_thread,
    "UID THREAD": cmd_thread,
}
