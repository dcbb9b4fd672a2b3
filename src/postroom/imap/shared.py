"""Store reads shared by the sessions of one process.

One delivery wakes every session that has the mailbox selected (5,000 IDLE clients on one
INBOX is the target), and each would then ask the store the same question.  Here the first
session asks and the others use its answer:

- ``ask``: sessions at the same modseq share one query; its answer is handed to callbacks
  (IDLE sessions announce it without their task waking, idle.py) or to futures
  (``changes_since``).
- ``changes_since``: the shared answer is used only when it is known to cover every change
  that woke the session (the change's modseq is at most the answer's HIGHESTMODSEQ);
  otherwise the session queries on its own, so nothing is ever missed.
- ``share``: the UID map of a selected mailbox is shared by the views on it (view.py).
- ``claim_recent``: \\Recent (RFC 3501 §2.3.2) goes to one session; once a claim up to UID u
  has started, no other session of this process needs to ask for UIDs up to u.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from functools import partial

from postroom.imap.view import Share, Shares
from postroom.store.base import Changes, Store

MAX_WATERMARKS = 10_000  # mailboxes remembered per store

Answer = Changes | BaseException
Callback = Callable[[Answer], object]


class _Shared:
    """What the sessions of this process share about one store."""

    __slots__ = ("shares", "asking", "claimed", "claiming")

    def __init__(self) -> None:
        self.shares = Shares()
        # (mailbox id, since) -> who waits for the answer of the query in flight
        self.asking: dict[tuple[int, int], list[Callback]] = {}
        # (mailbox id, uidvalidity) -> the highest UID a claim has covered / is covering
        self.claimed: dict[tuple[int, int], int] = {}
        self.claiming: dict[tuple[int, int], int] = {}


# id(store) -> (the store, what is shared about it); a plain dict because every IDLE session
# looks it up on every delivery and a WeakKeyDictionary lookup makes a weak reference each time
_by_store: dict[int, tuple[weakref.ref[Store], _Shared]] = {}


def _shared(store: Store) -> _Shared:
    entry = _by_store.get(id(store))
    if entry is None or entry[0]() is not store:
        key = id(store)
        entry = _by_store[key] = (weakref.ref(store, lambda _: _by_store.pop(key, None)), _Shared())
    return entry[1]


def ask(store: Store, mailbox_id: int, since: int, callback: Callback) -> None:
    """Call ``callback`` with the mailbox's changes after ``since`` (or the error reading
    them) once the store answers: one query for everyone who asks the same while it runs.
    The query runs in a task of its own, so no session's cancellation cancels it.
    Callbacks run one after the other in the loop and must not raise."""
    asking = _shared(store).asking
    key = (mailbox_id, since)
    callbacks = asking.get(key)
    if callbacks is None:
        callbacks = asking[key] = []
        query = asyncio.get_running_loop().create_task(store.changes_since(mailbox_id, since))
        query.add_done_callback(partial(_answer, asking, key))
    callbacks.append(callback)


def _answer(
    asking: dict[tuple[int, int], list[Callback]], key: tuple[int, int], query: asyncio.Task
) -> None:
    answer: Answer = (
        asyncio.CancelledError() if query.cancelled() else query.exception() or query.result()
    )
    for callback in asking.pop(key):
        callback(answer)


def _settle(future: asyncio.Future[Changes], answer: Answer) -> None:
    if future.done():  # cancelled with its session: nobody else's wait is
        return
    if isinstance(answer, asyncio.CancelledError):
        future.cancel()
    elif isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


async def changes_since(store: Store, mailbox_id: int, since: int, need: int | None) -> Changes:
    """``store.changes_since``, shared when ``need`` (the highest modseq of the changes the
    caller was told of) is known; None means "ask the store yourself"."""
    if need is None:
        return await store.changes_since(mailbox_id, since)
    waiter: asyncio.Future[Changes] = asyncio.get_running_loop().create_future()
    ask(store, mailbox_id, since, partial(_settle, waiter))
    changes = await waiter
    if changes.highestmodseq < need:
        changes = await store.changes_since(mailbox_id, since)  # that query started too early
    return changes


def reserve_recent(store: Store, mailbox_id: int, uidvalidity: int, last_uid: int) -> bool:
    """Whether the caller is the one to claim \\Recent up to ``last_uid`` (it must then call
    ``claim_reserved``); False when a claim covering it already returned here or is in
    flight."""
    shared = _shared(store)
    mark = (mailbox_id, uidvalidity)
    if max(shared.claimed.get(mark, 0), shared.claiming.get(mark, 0)) >= last_uid:
        return False
    shared.claiming[mark] = last_uid
    return True


async def claim_reserved(
    store: Store, mailbox_id: int, uidvalidity: int, last_uid: int
) -> list[int]:
    """``store.claim_recent`` after ``reserve_recent`` (the claiming session gets those UIDs;
    should its claim fail, they stay unclaimed in the store for the next session that
    asks)."""
    try:
        claimed = await store.claim_recent(mailbox_id)
    finally:
        release_recent(store, mailbox_id, uidvalidity, last_uid)
    marks = _shared(store).claimed
    mark = (mailbox_id, uidvalidity)
    if len(marks) >= MAX_WATERMARKS:
        marks.clear()
    marks[mark] = max(marks.get(mark, 0), last_uid, *claimed)
    return claimed


def release_recent(store: Store, mailbox_id: int, uidvalidity: int, last_uid: int) -> None:
    """End a reservation (claimed, failed, or given up by a session that went away)."""
    claiming = _shared(store).claiming
    mark = (mailbox_id, uidvalidity)
    if claiming.get(mark) == last_uid:
        del claiming[mark]


async def claim_recent(store: Store, mailbox_id: int, uidvalidity: int, last_uid: int) -> list[int]:
    """\\Recent up to ``last_uid`` for the first session of this process that asks."""
    if not reserve_recent(store, mailbox_id, uidvalidity, last_uid):
        return []
    return await claim_reserved(store, mailbox_id, uidvalidity, last_uid)


def share(store: Store, mailbox_id: int, uidvalidity: int) -> Share:
    """What the views of this process on one mailbox share."""
    return _shared(store).shares.get(mailbox_id, uidvalidity)
