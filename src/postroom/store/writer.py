"""One writer thread with group commit (DESIGN principle 3).

Every mutation is a function of the connection, queued by a coroutine that awaits its result.
The thread takes everything queued, runs each operation in its own SAVEPOINT (a failing
operation is rolled back alone), fsyncs the directories of the blob files the batch starts
referencing (each distinct directory once), commits once — one WAL fsync for the whole
batch — and only then announces the changes and settles the callers' futures.  Under load,
the operations that queue up while one batch is being fsync'd form the next batch, so
throughput grows with concurrency instead of being capped by the disk's fsync rate.

Several processes may each run a writer on the same data folder (the server and its SMTP
workers): every transaction holds the folder's write lock (writelock.py), so they take turns
without SQLite's sleep-and-retry.  The writer's connection never checkpoints the log itself;
``committed`` hears of each committed batch, with its changes, once its callers are settled:
the checkpointer (checkpoint.py) is nudged, or an SMTP worker reports to the server process.

A caller whose event loop has nothing else to do (it serves one session) may ask for its
operation to run ``here``: when the thread is idle, nothing submitted earlier is still
waiting and no other process holds the write lock, the calling thread runs it as a batch of
one and its future is settled before ``submit`` returns.  That saves two thread hand-overs
and a GIL hand-over per write (a lone client sending message after message gets 8% more
through, bench/ab.py), for blocking the loop during one commit that its only session waits
for anyway.  SMTP workers use it; the server process does not: with its background steps
holding the connection for milliseconds at a time, a lone session there got 5-15% less.

Blob files whose last reference went away are unlinked after the commit, under the write
lock, and only if no row came back for them meanwhile (another operation or another process
may have stored the same bytes again).

Deferred work (parsing and full-text indexing) runs as ``background`` steps, each its own
transaction: when the queue has been empty a moment (and then step after step while it stays
empty), every ``BACKGROUND_EVERY`` batches while it is not once ``BACKGROUND_MIN`` items
wait, and after every batch while the backlog exceeds ``BACKLOG``, so it neither delays
acknowledgements much nor falls behind without bound.  A writer without ``background``
leaves that work to another process's writer, which hears of it through ``add_background``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postroom import log
from postroom.store.base import StoreError
from postroom.store.blobs import BlobFiles, fsync_dir
from postroom.store.notifier import Change, Notifier
from postroom.store.writelock import WriteLock

# Operations per transaction at most: bounds the time one commit holds the write lock.
MAX_BATCH = 512
# Background steps run after this many idle seconds (so a trickle of writes is indexed in
# chunks, not one text per step), then one after another while nothing else is queued (a
# backlog left by a burst drains at full speed), under sustained load after every
# BACKGROUND_EVERY batches once BACKGROUND_MIN items wait (FTS5 spends about twice the CPU
# per text in transactions of a few texts as in transactions of dozens), and after every
# batch while more than BACKLOG items wait: writers are slowed down rather than letting the
# backlog (which searches scan) grow without bound.
BACKGROUND_IDLE = 0.05
BACKGROUND_EVERY = 4
BACKGROUND_MIN = 64
BACKLOG = 1000


@dataclass(slots=True)
class OpContext:
    """What an operation reports besides its result: changes to announce after commit,
    directories to fsync before it (where blob files it references were renamed into place),
    how many items of work it left for the background step, and what to call once its
    changes are committed."""

    changes: list[Change] = field(default_factory=list)
    sync: set[Path] = field(default_factory=set)
    background: int = 0
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def announce(self, change: Change) -> None:
        self.changes.append(change)


Operation = Callable[[sqlite3.Connection, OpContext], Any]
# A background step: a bounded amount of work in its own transaction, which it starts under
# the write lock it is given; returns how much is left.
Background = Callable[[sqlite3.Connection, WriteLock], int]


@dataclass(slots=True)
class _Item:
    fn: Operation
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    files: tuple[str, ...]  # blobs written for this operation: unlink if it does not commit


@dataclass(slots=True)
class _More:
    """Background work another process's writer left for this one."""

    items: int


# Whether a transaction committed; each item's result or error and context; the blobs it
# released.
_Outcome = tuple[bool, list[tuple[_Item, Any, BaseException | None, OpContext]], list[str]]

_STOP = object()


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        blobs: BlobFiles,
        notifier: Notifier,
        background: Background | None,
        lock: WriteLock,
        committed: Callable[[list[Change]], None],
    ) -> None:
        self._connect = connect
        self._blobs = blobs
        self._notifier = notifier
        self._background = background
        self._lock = lock
        self._committed = committed
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="postroom-store-writer", daemon=True)
        self._closed = False
        # Whoever uses the connection holds this: the thread, or a caller running ``here``.
        self._turn = threading.Lock()
        self._conn: sqlite3.Connection | None = None  # while the thread runs
        self._queued = 0  # items put in the queue (by callers on the loop)
        self._ran = 0  # of those, how many the thread ran (under _turn)
        self.batches = 0  # committed transactions, for tests and benchmarks

    def start(self) -> None:
        self._lock.open()
        self._thread.start()

    def submit(
        self, fn: Operation, files: Iterable[str] = (), *, here: bool = False
    ) -> asyncio.Future[Any]:
        """Queue ``fn`` for the thread; with ``here``, run it on this thread when it would
        not have to wait (see the module docstring)."""
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        item = _Item(fn, future, loop, tuple(files))
        if not (here and self._run_here(item)):
            self._queued += 1
            self._queue.put(item)
        return future

    def _run_here(self, item: _Item) -> bool:
        """Run and commit ``item`` on the calling thread if nothing is to be waited for."""
        if not self._turn.acquire(blocking=False):
            return False
        try:
            conn = self._conn
            # Writes commit in the order they were submitted.
            if conn is None or self._ran != self._queued or not self._lock.acquire_nowait():
                return False
            try:
                outcome = self._transaction(conn, [item])
            finally:
                self._lock.release()
            added = self._conclude(conn, outcome)
            if added and self._background is not None:
                self._queue.put(_More(added))  # for the thread's background steps
            return True
        finally:
            self._turn.release()

    def add_background(self, items: int) -> None:
        """Another process committed ``items`` of background work (safe from any thread)."""
        if self._background is not None and not self._closed:
            self._queue.put(_More(items))

    def stop(self) -> None:
        """Run everything already queued, then end the thread (blocks)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        # Savepoints' journals: on disk, each batch would create, unlink and fill a file.
        conn.execute("PRAGMA temp_store = MEMORY")
        self._conn = conn
        try:
            # Work may be left from before a crash.
            pending = 0 if self._background is None else 1
            since_background = 0
            idle = False  # nothing queued since the last background step
            while True:
                try:
                    if not pending:
                        first = self._queue.get()
                    elif idle:  # catching up: step after step while nothing else comes
                        first = self._queue.get_nowait()
                    else:
                        first = self._queue.get(timeout=BACKGROUND_IDLE)
                except queue.Empty:
                    pending = self._step(conn)
                    since_background = 0
                    idle = True
                    continue
                idle = False
                if first is _STOP:
                    break
                batch = []
                stopping = False
                item = first
                while True:
                    if isinstance(item, _More):
                        pending += item.items
                    else:
                        batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                if batch:
                    added = self._run_batch(conn, batch)
                    if self._background is not None:  # else another process's writer does it
                        pending += added
                since_background += 1  # a batch, here or (_More) in another process
                if pending > BACKLOG or (
                    pending >= BACKGROUND_MIN and since_background >= BACKGROUND_EVERY
                ):
                    pending = self._step(conn)
                    since_background = 0
                if stopping:
                    break
        finally:
            with self._turn:
                self._conn = None
                self._lock.close()
                conn.close()

    def _step(self, conn: sqlite3.Connection) -> int:
        assert self._background is not None  # nothing is pending without it
        try:
            with self._turn:
                return self._background(conn, self._lock)
        except Exception as exc:  # retried after the next batch; searches still see the rows
            log.event("store_background_failed", error=repr(exc))
            return 0

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> int:
        """Run, commit, clean up, announce, settle; returns the background work added."""
        with self._turn:
            with self._lock:
                outcome = self._transaction(conn, batch)
            self._ran += len(batch)
            return self._conclude(conn, outcome)

    def _conclude(self, conn: sqlite3.Connection, outcome: _Outcome) -> int:
        """After a transaction: clean up, announce, settle; returns the background work
        added."""
        committed, outcomes, released = outcome
        self.batches += 1
        unlink = set(released)
        for item, _, exc, _ in outcomes:
            if exc is not None:
                unlink.update(item.files)
        if unlink:  # before settling, so an expunge that returned has freed its space
            self._unlink_unreferenced(conn, unlink)
        background = 0
        changes: list[Change] = []
        for item, result, exc, ctx in outcomes:
            # Announce before settling: whoever the caller wakes up next must not be able to
            # subscribe in time to hear about a change it already sees.
            if exc is None:
                background += ctx.background
                changes += ctx.changes
                for call in ctx.on_commit:
                    try:
                        call()
                    except Exception as error:  # an after-commit call must not stop the writer
                        log.event("store_on_commit_failed", error=repr(error))
                for change in ctx.changes:
                    try:
                        self._notifier.publish(change)
                    except Exception as error:  # nor must a notifier
                        log.event("store_publish_failed", error=repr(error))
            _settle(item, result, exc)
        if committed:
            try:
                self._committed(changes)
            except Exception as error:  # nor must whoever hears of commits
                log.event("store_report_failed", error=repr(error))
        return background

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Item]) -> _Outcome:
        """Each operation in its own savepoint (a failing one is rolled back alone), then one
        commit; returns whether it committed, the outcomes and the blobs it released."""
        outcomes: list[tuple[_Item, Any, BaseException | None, OpContext]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                ctx = OpContext()
                conn.execute("SAVEPOINT op")
                try:
                    result = item.fn(conn, ctx)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (I/O error, full disk)
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((item, None, exc, ctx))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((item, result, None, ctx))
            # A committed row must never point to a file whose name a crash could undo.
            directories: set[Path] = set()
            for _, _, exc, ctx in outcomes:
                if exc is None:
                    directories |= ctx.sync
            for directory in directories:
                fsync_dir(directory)
            released = _release_unreferenced(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.event("store_commit_failed", error=repr(exc))
            error = StoreError(f"the store could not commit: {exc}")
            return False, [(item, None, error, OpContext()) for item in batch], []
        return True, outcomes, released

    def _unlink_unreferenced(self, conn: sqlite3.Connection, candidates: set[str]) -> None:
        """Remove blob files that no row references.  Under the write lock, so no operation
        (of any process) can add a reference between the check and the unlink: an operation
        that stores the same bytes later sees the file missing and writes it again."""
        try:
            with self._lock:
                unlink_unreferenced(conn, self._blobs, candidates)
        except Exception as exc:  # leftovers are removed by the next crash-recovery scan
            log.event("store_unlink_failed", error=repr(exc))


def unlink_unreferenced(
    conn: sqlite3.Connection, blobs: BlobFiles, candidates: Iterable[str]
) -> int:
    """Unlink the blob files among ``candidates`` that no row references, checked and
    unlinked in one write transaction; returns how many went."""
    candidates = sorted(candidates)
    conn.execute("BEGIN IMMEDIATE")
    try:
        kept = {
            row[0]
            for row in conn.execute(
                "SELECT sha256 FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))",
                (json.dumps(candidates),),
            )
        }
        for blob_id in candidates:
            if blob_id not in kept:
                blobs.unlink(blob_id)
    finally:
        conn.execute("COMMIT")
    return len(candidates) - len(kept)


def _release_unreferenced(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT sha256 FROM blobs WHERE refcount <= 0").fetchall()
    if rows:
        conn.execute("DELETE FROM blobs WHERE refcount <= 0")
    return [sha for (sha,) in rows]


def _settle(item: _Item, result: Any, exc: BaseException | None) -> None:
    def settle() -> None:
        if item.future.done():  # the caller was cancelled; the operation still happened
            return
        if exc is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(exc)

    if asyncio._get_running_loop() is item.loop:  # run here, on the caller's loop
        settle()
        return
    # RuntimeError: the caller's loop is closed, nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        item.loop.call_soon_threadsafe(settle)
