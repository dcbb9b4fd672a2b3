"""SORT and THREAD (RFC 5256, RFC 5957) and their UID forms: search like SEARCH, then order
the matches from the metadata computed at delivery (``Message.meta``), never the blobs."""

from __future__ import annotations

import weakref
from collections import OrderedDict
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

_cache: weakref.WeakKeyDictionary[Store, OrderedDict[tuple[int, int], dict[int, SortInfo]]] = (
    weakref.WeakKeyDictionary()
)


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


async def _matches(s: Session, cmd: Command, charset: str, query: object) -> list[SortInfo] | bytes:
    """The matching messages, or the tagged refusal."""
    if charset not in CHARSETS:
        code = "BADCHARSET (" + " ".join(CHARSETS) + ")"
        return response.tagged(cmd.tag, "NO", "Unsupported charset", code)
    try:
        positions = await search_positions(s, query)
    except OutOfRange:
        return response.tagged(cmd.tag, "BAD", "Invalid message sequence number")
    return await _infos(s, positions)


async def cmd_sort(s: Session, cmd: Command) -> bytes:
    """RFC 5256 §3: ``* SORT`` with sequence numbers (UIDs for UID SORT) in sort order."""
    args: SortArgs = cmd.args
    infos = await _matches(s, cmd, args.charset, args.query)
    if isinstance(infos, bytes):
        return infos
    uid = cmd.name == "UID SORT"
    numbers = [i.uid if uid else i.pos + 1 for i in sort(infos, args.criteria)]
    s.send(response.untagged(b" ".join([b"SORT", *(b"%d" % n for n in numbers)])))
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


async def cmd_thread(s: Session, cmd: Command) -> bytes:
    """RFC 5256 §3: ``* THREAD`` with the threads of the matching messages."""
    args: ThreadArgs = cmd.args
    infos = await _matches(s, cmd, args.charset, args.query)
    if isinstance(infos, bytes):
        return infos
    if args.algorithm == "REFERENCES":
        roots = thread.references(infos)
    else:
        roots = thread.ordered_subject(infos)
    if cmd.name == "UID THREAD":
        line = thread.render(roots, lambda i: i.uid)
    else:
        line = thread.render(roots, lambda i: i.pos + 1)
    s.send(response.untagged(line))
    return response.tagged(cmd.tag, "OK", f"{cmd.name} completed")


HANDLERS = {
    "SORT": cmd_sort,
    "UID SORT": cmd_sort,
    "THREAD": cmd_thread,
    "UID THREAD": cmd_thread,
}
