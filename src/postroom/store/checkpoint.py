"""WAL checkpoints on a thread of their own.

SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on the
writer thread: copying the log into the database (and fsyncing it) delays every
acknowledgement queued behind that commit, and with 100 KB messages it was a fifth of the
writer's time.  Here the writer's connection never checkpoints by itself; after each commit
it nudges this thread, which copies the log with PASSIVE checkpoints (they never block the
writer or readers) on another core, since SQLite releases the GIL while it works.

The log restarts from its beginning only when a write transaction starts with every frame
already copied, which a writer committing without pause may never allow, so the log would
grow for as long as the load lasts.  Once it passes ``RESTART_FRAMES`` the writer is asked to
run one checkpoint itself between two batches: that finishes the copy (little is left by
then), and its next transaction restarts the log.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

from postroom import log

# Seconds between two checkpoints at most once nudged: copies gather a few commits each.
PAUSE = 0.02
# Frames (pages) of log beyond which the writer finishes the copy itself (16 MiB): a longer
# log makes every read look a page up in more of its hash tables.
RESTART_FRAMES = 4096


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._wake = threading.Event()
        self._stopping = False
        self._restart = False
        self._thread = threading.Thread(
            target=self._run, name="postroom-store-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def prepare_writer(self, conn: sqlite3.Connection) -> None:
        """The writer's connection leaves checkpoints to this thread."""
        conn.execute("PRAGMA wal_autocheckpoint = 0")

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Called by the writer thread after each commit, with its connection."""
        if self._restart:
            self._restart = False
            _checkpoint(conn)
        self._wake.set()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                frames = _checkpoint(conn)
                if frames >= RESTART_FRAMES:
                    self._restart = True
                time.sleep(PAUSE)
        finally:
            conn.close()


def _checkpoint(conn: sqlite3.Connection) -> int:
    """One PASSIVE checkpoint; returns the frames in the log (0 when it failed)."""
    try:
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # the next nudge tries again
        log.event("store_checkpoint_failed", error=repr(exc))
        return 0
    return max(frames, 0)
