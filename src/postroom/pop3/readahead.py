"""Message reads for RETR, batched and read ahead.

POP3 clients download in order (RETR 1, RETR 2, ...).  A store call is a hop to one of its
I/O threads, which costs the event loop more than reading a small message, so the reads are
batched: a RETR that misses reads its message together with the next ones (``BATCH``
messages of at most ``BATCH_BYTES`` octets in all), and when fewer than half of them are
left the next batch is started while the current ones are being sent.  That serves a client
that waits for each reply as well as one that pipelines.  At most two batches are held (the
one being served and the one in flight), so the memory stays bounded whatever the maildrop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from postroom.store.base import NotFound, Store

BATCH = 32
BATCH_BYTES = 1 << 20

Upcoming = Callable[[], Sequence[tuple[str, int]]]  # (blob id, size) the client will want next


class ReadAhead:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ready: dict[str, bytes | None] = {}  # blob id -> bytes (None: gone)
        self._pending: asyncio.Task[dict[str, bytes | None]] | None = None
        self._pending_ids: frozenset[str] = frozenset()

    async def read(self, blob_id: str, upcoming: Upcoming | None = None) -> bytes:
        """The blob's bytes; ``upcoming`` says what the client will likely ask for next, in
        order (None: a lone read, as for TOP, that leaves the read-ahead alone)."""
        if blob_id not in self._ready and blob_id in self._pending_ids:
            await self._collect()
        if blob_id in self._ready:
            data = self._ready.pop(blob_id)
        elif upcoming is None:
            return await self.store.read_blob(blob_id)
        else:
            # The client went elsewhere (or this is the first RETR): start over from here.
            self.close()
            self._ready = await self._read(self._select([blob_id], upcoming()))
            data = self._ready.pop(blob_id)
        if upcoming is not None and self._pending is None and len(self._ready) < BATCH // 2:
            wanted = self._select([], upcoming())
            if wanted:
                self._pending_ids = frozenset(wanted)
                self._pending = asyncio.ensure_future(self._read(wanted))
        if data is None:
            raise NotFound(f"no blob {blob_id}")
        return data

    def close(self) -> None:
        self._ready = {}
        if self._pending is not None:
            self._drop(self._pending)
            self._pending = None
            self._pending_ids = frozenset()

    def _select(self, first: list[str], upcoming: Sequence[tuple[str, int]]) -> list[str]:
        """``first`` and then the upcoming messages not yet held, while the batch stays
        within ``BATCH`` messages and ``BATCH_BYTES`` octets."""
        wanted, total = first, 0
        for other, size in upcoming:
            if len(wanted) >= BATCH or total + size > BATCH_BYTES:
                break
            if other not in self._ready and other not in wanted:
                wanted.append(other)
                total += size
        return wanted

    async def _read(self, blob_ids: list[str]) -> dict[str, bytes | None]:
        return dict(zip(blob_ids, await self.store.read_blobs(blob_ids), strict=True))

    async def _collect(self) -> None:
        assert self._pending is not None
        task, self._pending, self._pending_ids = self._pending, None, frozenset()
        self._ready.update(await task)

    @staticmethod
    def _drop(task: asyncio.Task[dict[str, bytes | None]]) -> None:
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: a failed read nobody wanted is not an error
        else:
            task.cancel()
