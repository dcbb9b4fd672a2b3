"""WAL checkpoints on a thread of their own.

SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the
writer thread: copying the log into the database (and fsyncing it) delays every
acknowledgement queued behind that commit, and with 100 KB messages it was a fifth of the
writer's time.  Here writers' connections never checkpoint by themselves; each commit (of
this process's writer, or one another process reports) nudges this thread, which copies the
log with PASSIVE checkpoints (they never block writers or readers) on another core, since
SQLite releases the GIL while it works.

The log restarts from its beginning only when a write transaction starts with every frame
already copied, which writers committing without pause may never allow, so the log would
grow for as long as the load lasts.  Once it passes ``RESTART_FRAMES`` this thread takes the
write lock for one checkpoint: with no writer in the way that finishes the copy (little is
left by then), and the next transaction, of whichever writer, restarts the log.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

from postroom import log
from postroom.store.writelock import WriteLock

# Seconds between two checkpoints at most once nudged: copies gather a few commits each.
PAUSE = 0.02
# Frames (pages) of log beyond which the writer finishes the copy itself (16 MiB): a longer
# log makes every read look a page up in more of its hash tables.
RESTART_FRAMES = 4096


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection], lock: WriteLock) -> None:
        self._connect = connect
        self._lock = lock
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="postroom-store-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._lock.open()
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def nudge(self, *_: object) -> None:
        """Something was committed (safe from any thread; as a writer's ``committed``)."""
        self._wake.set()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                if _checkpoint(conn) >= RESTART_FRAMES:
                    with self._lock:
                        _checkpoint(conn)
                time.sleep(PAUSE)
        finally:
            self._lock.close()
            conn.close()


def _checkpoint(conn: sqlite3.Connection) -> int:
    """One PASSIVE checkpoint; returns the frames in the log (0 when it failed)."""
    try:
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # the next nudge tries again
        log.event("store_checkpoint_failed", error=repr(exc))
        return 0
    return max(frames, 0)
