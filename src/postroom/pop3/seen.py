"""\\Seen marks for RETR'd messages, batched.

RETR sets \\Seen so that IMAP clients show the message as read.  One store commit per RETR
would make a 10,000-message download cost 10,000 commits; instead the marks are applied in
the background, ``BATCH`` at a time or ``DELAY`` seconds after the first pending one, and
``flush`` applies what is left (the session calls it before the UPDATE state and at its end,
whatever way it ends).  The +OK of RETR acknowledges the message bytes, not the flag, so
nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from postroom.store.base import FlagMode, Store, StoreError

BATCH = 256
DELAY = 0.5  # seconds an IMAP client may see a RETR'd message still unread


class SeenMarker:
    def __init__(self, store: Store, mailbox_id: int, on_error: Callable[[Exception], None]):
        self.store = store
        self.mailbox_id = mailbox_id
        self.on_error = on_error
        self._pending: list[int] = []
        self._wake = asyncio.Event()
        self._urgent = False
        self._task: asyncio.Task[None] | None = None

    def mark(self, uid: int) -> None:
        self._pending.append(uid)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        elif len(self._pending) >= BATCH:
            self._wake.set()

    async def _run(self) -> None:
        while self._pending:
            if not self._urgent and len(self._pending) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), DELAY)
            self._wake.clear()
            uids, self._pending = sorted(set(self._pending)), []
            try:
                await self.store.store_flags(self.mailbox_id, uids, FlagMode.ADD, ["\\Seen"])
            except (StoreError, OSError) as exc:
                self.on_error(exc)

    async def flush(self) -> None:
        """Apply every pending mark now."""
        if self._task is None:
            return
        self._urgent = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._urgent = False
