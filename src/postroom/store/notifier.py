"""Change announcements from the store to sessions (DESIGN principle 6).

An event only says *what* changed; a session that cares asks the store for details
(``Store.changes_since``), so the same events work in one process or across nodes
(PostgreSQL LISTEN/NOTIFY later implements the same interface).
"""

from __future__ import annotations

import abc
import asyncio
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class ChangeKind(Enum):
    MESSAGES_ADDED = "added"
    FLAGS_CHANGED = "flags"
    EXPUNGED = "expunged"
    MAILBOX_CREATED = "created"
    MAILBOX_RENAMED = "renamed"
    MAILBOX_DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    account_id: int
    mailbox_id: int
    kind: ChangeKind
    modseq: int = 0


class Subscription:
    """A session's inbox of changes for one account.  Bounded: when a slow reader falls
    behind, newer events are dropped and ``overflowed`` is set, which tells the session to
    resynchronise from the store (nothing is lost, only coalesced).

    A plain deque with at most one waiting future rather than an ``asyncio.Queue``: one
    delivery to a mailbox that 5,000 IDLE sessions watch puts 5,000 changes at once, and a
    ``listener`` lets an idling session act on a change without its task waking."""

    def __init__(self, notifier: Notifier, account_id: int, maxsize: int = 1000) -> None:
        self.account_id = account_id
        self.overflowed = False
        # told of each change first; returns whether to queue it
        self.listener: Callable[[Change], bool] | None = None
        self._changes: deque[Change] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._notifier = notifier

    def _put(self, change: Change) -> None:
        if self.listener is not None and not self.listener(change):
            return
        if len(self._changes) >= self._maxsize:
            self.overflowed = True
            return
        self._changes.append(change)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> bool:
        """Whether a change is waiting."""
        return bool(self._changes)

    async def get(self) -> Change:
        """Wait for the next change."""
        while not self._changes:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._changes.popleft()

    def drain(self) -> list[Change]:
        """Every change already waiting, without blocking."""
        items = list(self._changes)
        self._changes.clear()
        return items

    def close(self) -> None:
        self._notifier.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Notifier(abc.ABC):
    @abc.abstractmethod
    def subscribe(self, account_id: int) -> Subscription: ...

    @abc.abstractmethod
    def unsubscribe(self, subscription: Subscription) -> None: ...

    @abc.abstractmethod
    def publish(self, change: Change) -> None:
        """Announce a committed change; safe to call from any thread."""


class InProcessNotifier(Notifier):
    """Delivers changes to subscribers of this process, on their event loop."""

    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, account_id: int) -> Subscription:
        self._loop = asyncio.get_running_loop()
        sub = Subscription(self, account_id)
        self._subs[account_id].add(sub)
        return sub

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subs.get(subscription.account_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subs[subscription.account_id]

    def publish(self, change: Change) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._dispatch(change)
        else:
            loop.call_soon_threadsafe(self._dispatch, change)

    def _dispatch(self, change: Change) -> None:
        for sub in tuple(self._subs.get(change.account_id, ())):
            sub._put(change)
