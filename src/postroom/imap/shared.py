"""Store reads shared by the sessions of one process.

One delivery wakes every session that has the mailbox selected (5,000 IDLE clients on one
INBOX is the target), and each would then ask the store the same question.  Here the first
session asks and the others await its answer:

- ``changes_since``: sessions at the same modseq share one query, but only when the answer
  is known to cover every change that woke them (the change's modseq is at most the
  answer's HIGHESTMODSEQ); otherwise they query on their own, so nothing is ever missed.
- ``share``: the UID map of a selected mailbox is shared by the views on it (view.py).
- ``claim_recent``: \\Recent (RFC 3501 §2.3.2) goes to one session; once a claim up to UID u
  has started, no other session of this process needs to ask for UIDs up to u.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from postroom.imap.view import Share, Shares
from postroom.store.base import Changes, Store

T = TypeVar("T")
MAX_WATERMARKS = 10_000  # mailboxes remembered per store

_flights: weakref.WeakKeyDictionary[Store, dict[tuple, asyncio.Future]] = (
    weakref.WeakKeyDictionary()
)
_shares: weakref.WeakKeyDictionary[Store, Shares] = weakref.WeakKeyDictionary()
# (mailbox id, uidvalidity) -> the highest UID a claim has covered / is covering
_claimed: weakref.WeakKeyDictionary[Store, dict[tuple[int, int], int]] = weakref.WeakKeyDictionary()
_claiming: weakref.WeakKeyDictionary[Store, dict[tuple[int, int], int]] = (
    weakref.WeakKeyDictionary()
)


async def _single_flight(store: Store, key: tuple, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` once for concurrent callers with the same key."""
    flights = _flights.setdefault(store, {})
    pending = flights.get(key)
    if pending is not None:
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            if not pending.cancelled():
                raise  # this session is being cancelled
            return await call()  # the session that asked was: ask again
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    flights[key] = future
    try:
        result = await call()
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: a flight nobody joined must not log a warning
        raise
    else:
        future.set_result(result)
    finally:
        del flights[key]
    return result


async def changes_since(store: Store, mailbox_id: int, since: int, need: int | None) -> Changes:
    """``store.changes_since``, shared when ``need`` (the highest modseq of the changes the
    caller was told of) is known; None means "ask the store yourself"."""
    if need is None:
        return await store.changes_since(mailbox_id, since)
    key = ("changes", mailbox_id, since)
    changes = await _single_flight(store, key, lambda: store.changes_since(mailbox_id, since))
    if changes.highestmodseq < need:
        changes = await store.changes_since(mailbox_id, since)  # that query started too early
    return changes


async def claim_recent(store: Store, mailbox_id: int, uidvalidity: int, last_uid: int) -> list[int]:
    """``store.claim_recent`` unless a claim covering ``last_uid`` already returned here or
    is in flight (the claiming session gets those UIDs; should its claim fail, they stay
    unclaimed in the store for the next session that asks)."""
    marks = _claimed.setdefault(store, {})
    claiming = _claiming.setdefault(store, {})
    mark = (mailbox_id, uidvalidity)
    if max(marks.get(mark, 0), claiming.get(mark, 0)) >= last_uid:
        return []
    claiming[mark] = last_uid
    try:
        claimed = await store.claim_recent(mailbox_id)
    finally:
        if claiming.get(mark) == last_uid:
            del claiming[mark]
    if len(marks) >= MAX_WATERMARKS:
        marks.clear()
    marks[mark] = max(marks.get(mark, 0), last_uid, *claimed)
    return claimed


def share(store: Store, mailbox_id: int, uidvalidity: int) -> Share:
    """What the views of this process on one mailbox share."""
    shares = _shares.get(store)
    if shares is None:
        shares = _shares[store] = Shares()
    return shares.get(mailbox_id, uidvalidity)
