"""Message reads for RETR with a small read-ahead.

POP3 clients download in order (RETR 1, RETR 2, ...).  Each blob read is a hop to the store's
I/O threads; starting the reads of the next messages while the current one is being sent
hides that latency, for a client that waits for each reply as well as for one that
pipelines.  At most ``DEPTH`` reads are ahead, each of a message of at most ``MAX_SIZE``
octets, so the memory it holds stays small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from postroom.store.base import Store

DEPTH = 2
MAX_SIZE = 1 << 20


class ReadAhead:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ahead: dict[str, asyncio.Task[bytes]] = {}  # blob id -> read in flight

    async def read(self, blob_id: str, upcoming: Sequence[tuple[str, int]] = ()) -> bytes:
        """The blob's bytes; ``upcoming`` (blob id, size) are what the client will likely
        ask for next, in order."""
        task = self._ahead.pop(blob_id, None)
        wanted = [b for b, size in upcoming[:DEPTH] if size <= MAX_SIZE and b != blob_id]
        for other in set(self._ahead) - set(wanted):
            self._drop(self._ahead.pop(other))
        for other in wanted:
            if other not in self._ahead:
                self._ahead[other] = asyncio.create_task(self.store.read_blob(other))
        if task is None:
            return await self.store.read_blob(blob_id)
        return await task

    def close(self) -> None:
        for task in self._ahead.values():
            self._drop(task)
        self._ahead.clear()

    @staticmethod
    def _drop(task: asyncio.Task[bytes]) -> None:
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: a failed read nobody wanted is not an error
        else:
            task.cancel()
