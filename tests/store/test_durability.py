"""The order of the steps that make a stored message durable, observed on real files and a
real database.  A SIGKILL (test_crash) leaves the page cache intact, so only this order shows
that a power cut loses nothing acknowledged (DESIGN principle 3):

- a message kept in a blob file is fsync'd before it is renamed into place, and the
  directories of its name are fsync'd before the commit that first references it;
- a message kept in the database is written by the acknowledging transaction itself, which
  commits with ``synchronous = FULL`` (the WAL is fsync'd at commit);
- either way the append returns only after that commit has returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
import threading

import pytest

from postroom.store.sqlite import INLINE_MAX, SqliteStore
from tests.store.conftest import message

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads file names from /proc/self/fd"
)

WRITER = "postroom-store-writer"


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(thread, what) for every completed fsync, rename and SQL statement, in order."""
    recorded: list[tuple[str, str]] = []

    def note(what: str) -> None:
        recorded.append((threading.current_thread().name, what))

    real_fsync, real_rename, real_connect = os.fsync, os.rename, sqlite3.connect

    def fsync(fd: int) -> None:
        real_fsync(fd)
        note("fsync " + os.readlink(f"/proc/self/fd/{fd}"))

    def rename(src: str, dst: str) -> None:
        real_rename(src, dst)
        note(f"rename {src} {dst}")

    class Recorded(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            cursor = super().execute(sql, *args)
            note(sql)
            return cursor

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **kw: real_connect(*a, factory=Recorded, **kw)
    )
    return recorded


async def _append(tmp_path, events, inline_max: int, data: bytes) -> tuple[int, int]:
    """Append ``data``; returns the indexes in ``events`` of the transaction that stored it
    (its BEGIN and its COMMIT), checking that the append returned after that commit."""
    store = SqliteStore(tmp_path / "data", inline_max=inline_max)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("a@example.org", "h", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        start = len(events)
        await store.append(inbox.id, data)
        returned = len(events)
        events.append(("test", "returned"))
    finally:
        await store.close()
    writer = [i for i in range(start, returned) if events[i][0] == WRITER]
    insert = next(i for i in writer if events[i][1].startswith("INSERT INTO messages"))
    begin = max(i for i in writer if i < insert and events[i][1] == "BEGIN IMMEDIATE")
    commit = min(i for i in writer if i > insert and events[i][1] == "COMMIT")
    return begin, commit


async def test_a_blob_file_is_durable_before_the_commit_that_references_it(tmp_path, events):
    data = message(1, body="x" * 1000)
    blob_id = hashlib.sha256(data).hexdigest()
    _, commit = await _append(tmp_path, events, 0, data)
    blobs = tmp_path / "data" / "blobs"
    final = blobs / blob_id[:2] / blob_id[2:4] / blob_id
    [rename] = [i for i, (_, e) in enumerate(events) if e.endswith(f" {final}")]
    tmp = events[rename][1].split()[1]
    assert any(e == f"fsync {tmp}" for _, e in events[:rename]), "renamed before its fsync"
    for directory in (final.parent, final.parent.parent, blobs):
        fsyncs = [i for i, (_, e) in enumerate(events) if e == f"fsync {directory}"]
        assert any(rename < i < commit for i in fsyncs), f"{directory} not fsync'd in time"


async def test_an_inline_message_is_committed_with_a_full_sync(tmp_path, events):
    data = message(2, body="y" * 1000)
    begin, commit = await _append(tmp_path, events, INLINE_MAX, data)
    assert any(e.startswith("INSERT INTO blob_data") for _, e in events[begin:commit])
    syncs = [e for t, e in events[:commit] if t == WRITER and e.startswith("PRAGMA synchronous")]
    assert syncs[-1] == "PRAGMA synchronous = FULL"
    assert not list((tmp_path / "data" / "blobs").glob("??/??/*")), "a file for inline bytes"


async def test_concurrent_blob_files_share_their_directory_fsyncs(tmp_path, events):
    """Group commit covers files too: a batch fsyncs each directory once, not per message."""
    store = SqliteStore(tmp_path / "data", inline_max=0)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("a@example.org", "h", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        start = len(events)
        await asyncio.gather(*(store.append(inbox.id, message(n)) for n in range(50)))
    finally:
        await store.close()
    root = f"fsync {tmp_path / 'data' / 'blobs'}"
    assert sum(e == root for _, e in events[start:]) < 50
