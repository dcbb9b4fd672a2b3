"""Parked IDLE sessions (RFC 2177: changes are announced as they happen until DONE).

One delivery to an INBOX that 5,000 clients idle on must reach all of them within a second.
Waking 5,000 session tasks per delivery, each then waiting again for the shared query's
answer, spent most of that second in task switches, futures and the garbage collection they
caused (bench/idle.py).  So a session waiting in IDLE is *parked*: a change to its mailbox only adds it
to the callbacks of the one query for that mailbox and modseq (``shared.ask``), and the
answer is applied to its view and written to its connection right there, without its task
waking (an answer that misses a change committed meanwhile is asked for again).  Anything
else — the client's input, the heartbeat, a change that is not a new message, a flag change
or an expunge, a failed query, the one session that claims \\Recent — wakes the task
(``session.cmd_idle``), which synchronises the usual way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from postroom.imap import shared
from postroom.store.notifier import Change, ChangeKind

if TYPE_CHECKING:
    from postroom.imap.session import Session

# What a parked session announces without waking; anything else needs its task.
_PARKED = frozenset({ChangeKind.MESSAGES_ADDED, ChangeKind.FLAGS_CHANGED, ChangeKind.EXPUNGED})


class Idler:
    """What an idling session waits on: one future at a time, resolved by whichever comes
    first — the client's input, the heartbeat, or a change it cannot announce parked."""

    __slots__ = (
        "s", "_loop", "_future", "_answered", "parked", "asking", "need", "reserved", "beat_due"
    )  # fmt: skip

    def __init__(self, s: Session, loop: asyncio.AbstractEventLoop) -> None:
        self.s = s
        self._loop = loop
        self._future: asyncio.Future[None] | None = None
        self.parked = False
        self.asking: int | None = None  # the modseq the query in flight was asked from
        self.need = -1  # highest modseq of the changes that arrived while parked
        self.reserved: int | None = None  # \Recent up to this UID is ours to claim
        self.beat_due = False  # the heartbeat timer fired
        self._answered = self.on_answer  # bound once, not once per delivery

    def wake(self, *_: object) -> None:
        self.parked = False
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def beat(self) -> None:
        self.beat_due = True
        self.wake()

    async def park(self) -> None:
        """Wait until woken; the caller checked that nothing is waiting."""
        self._future = self._loop.create_future()
        self.parked, self.need = True, -1
        try:
            await self._future
        finally:
            self.parked = False
            self._future = None

    def on_change(self, change: Change) -> bool:
        """The subscription's listener: whether to queue the change for the session.  Only
        changes to the selected mailbox are ever announced (RFC 9051 §5.2), so others are
        not queued: a long IDLE must not fill the queue with them."""
        view = self.s.view
        if view is None or change.mailbox_id != view.mailbox_id:
            return False
        if not self.parked:
            return True  # the task synchronises before it parks again
        if change.kind not in _PARKED:
            self.wake()
            return True
        self.need = max(self.need, change.modseq)
        if self.asking is None:
            self._ask(view.mailbox_id, view.modseq)
        return True

    def _ask(self, mailbox_id: int, since: int) -> None:
        """Ask the shared query; at most one at a time, so ``asking`` says what it was."""
        self.asking = since
        shared.ask(self.s.store, mailbox_id, since, self._answered)

    def on_answer(self, answer: shared.Answer) -> None:
        """Announce the answer of the shared query (a ``shared.ask`` callback)."""
        s, view = self.s, self.s.view
        since, self.asking = self.asking, None
        if not self.parked or view is None:
            return  # woken meanwhile: the task synchronises by itself
        sub = s.sub
        if isinstance(answer, BaseException) or sub is None or sub.overflowed:
            self.wake()
            return
        if since != view.modseq or answer.highestmodseq < self.need:
            # asked before the task last synchronised, or a change committed after the
            # query began: ask again for what arrived while parked
            if self.need >= 0:
                self._ask(view.mailbox_id, view.modseq)
            return
        try:
            changed, _ = s.drain_events()  # only changes _PARKED lets through: nothing raises
            if not changed:
                return
            before = len(view)
            for line in view.apply(answer, allow_expunge=True):
                s.send(line)
            if len(view) > before and not s.rev2 and not view.readonly:
                last = view.uids[-1]
                if shared.reserve_recent(s.store, view.mailbox_id, view.uidvalidity, last):
                    self.reserved = last  # the store is asked by the task
                    self.wake()
                    return
                s.send(b"* %d RECENT\r\n" % len(view.recent))
            s.push()
            if s.backlogged():
                self.wake()  # the task waits for the client to catch up before parking
        except Exception as exc:  # a bug must cost this session a resynchronisation only
            s.conn.log("imap idle update failed", logging.ERROR, error=repr(exc))
            s.view_changed = True
            self.wake()
