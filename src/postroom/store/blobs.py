"""Message bytes as content-addressed, immutable files: ``blobs/ab/cd/<sha256>``.

A file is written to ``blobs/tmp``, fsync'd and renamed into place, so a crash never leaves a
partial file under a final name (only tmp leftovers, removed by ``clean_tmp``).  The rename
itself is durable once the directories ``write`` returns are fsync'd: the store's writer does
that once per group commit, right before the commit that references the file, so concurrent
deliveries share those fsyncs.  Which files are still referenced is the database's business
(sqlite.py); this module only knows paths.  All methods block: call them from worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

_HEX = frozenset("0123456789abcdef")
# A tmp file this old belongs to no write in progress, whatever process made it.
TMP_MAX_AGE = 3600.0


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def valid_id(blob_id: str) -> bool:
    return len(blob_id) == 64 and _HEX.issuperset(blob_id)


class BlobFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.owners = root / "owners"

    def setup(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.owners.mkdir(exist_ok=True)
        fsync_dir(self.root.parent)
        fsync_dir(self.root)

    # -- who has the store open: a marker left by a dead process means it crashed --------
    def crashed_owners(self) -> list[Path]:
        """Markers of processes that had the store open and died without closing it."""
        dead = []
        for entry in os.scandir(self.owners):
            try:
                alive = _alive(int(entry.name.partition(".")[0]))
            except ValueError:
                alive = False
            if not alive:
                dead.append(Path(entry.path))
        return dead

    def claim(self) -> Path:
        marker = self.owners / f"{os.getpid()}.{secrets.token_hex(8)}"
        marker.touch(mode=0o640)
        fsync_dir(self.owners)
        return marker

    def path(self, blob_id: str) -> Path:
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def exists(self, blob_id: str) -> bool:
        return os.path.exists(self.path(blob_id))

    def write(self, blob_id: str, data: bytes) -> tuple[Path, ...]:
        """Store ``data`` (whose sha256 is ``blob_id``) unless it is already there; returns
        the directories to fsync before the file's name may be relied on.  Those are its
        directory and the two above, whose entries a concurrent ``write`` may have just
        created: fsyncing an unchanged directory costs next to nothing."""
        final = self.path(blob_id)
        parent = final.parent
        dirs = (parent, parent.parent, self.root)
        if os.path.exists(final):  # complete (renamed only once fsync'd), maybe in flight
            return dirs
        parent.mkdir(parents=True, exist_ok=True)
        # The pid in the name lets clean_tmp tell a live writer's file from a crash leftover.
        tmp = self.tmp / f"{os.getpid()}.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, final)
        return dirs

    def read(self, blob_id: str) -> bytes:
        with open(self.path(blob_id), "rb") as fh:
            return fh.read()

    def unlink(self, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(blob_id))

    def clean_tmp(self) -> int:
        """Remove tmp files left by crashed writers; returns how many were removed."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self.tmp):
            pid_text = entry.name.partition(".")[0]
            try:
                stale = now - entry.stat().st_mtime > TMP_MAX_AGE or not _alive(int(pid_text))
            except (ValueError, FileNotFoundError):
                stale = True
            if stale:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def all_ids(self) -> Iterator[str]:
        """Every blob file present (the crash-recovery scan)."""
        for top in os.scandir(self.root):
            if len(top.name) != 2 or not top.is_dir():
                continue
            for sub in os.scandir(top.path):
                if not sub.is_dir():
                    continue
                for entry in os.scandir(sub.path):
                    if valid_id(entry.name):
                        yield entry.name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
