"""The data folder's write lock: one write transaction at a time, over every process.

SQLite serialises writers itself, but a writer that finds the database locked sleeps and
retries (1, 2, 5, 10 ms and longer), so two processes committing without pause (the server
and its SMTP workers, each with its own writer) would mostly wait on each other's sleeps.
Taking this lock first makes them queue in the kernel instead: the next writer wakes the
moment the previous one commits.  ``flock`` locks belong to the open file, so every writer
(thread or process) opens its own.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

NAME = "write.lock"


class WriteLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / NAME
        self._fd: int | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        assert self._fd is not None, "the write lock is not open"
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without the GIL
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire_nowait(self) -> bool:
        """Take the lock unless another writer holds it; never waits."""
        assert self._fd is not None, "the write lock is not open"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
