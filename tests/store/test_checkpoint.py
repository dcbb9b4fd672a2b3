"""WAL checkpoints run on their own thread, and the log stays bounded under steady writes."""

from __future__ import annotations

import asyncio

from postroom.store import checkpoint
from postroom.store.sqlite import DB_NAME, SqliteStore
from tests.store.conftest import message


async def open_store(path) -> tuple[SqliteStore, int]:
    store = SqliteStore(path)
    await store.open()
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    return store, inbox.id


async def test_the_log_is_copied_into_the_database(tmp_path):
    store, inbox = await open_store(tmp_path / "d")
    try:
        db = tmp_path / "d" / DB_NAME
        before = db.stat().st_size
        body = "x" * 8000
        for n in range(100):  # 800 KB, inline: written to the log first
            await store.append(inbox, message(n, body=body))
        for _ in range(200):
            if db.stat().st_size - before > 800_000:
                break
            await asyncio.sleep(0.01)
        assert db.stat().st_size - before > 800_000
    finally:
        await store.close()


async def test_a_busy_log_still_restarts(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "RESTART_FRAMES", 64)
    store, inbox = await open_store(tmp_path / "d")
    try:
        body = "y" * 8000

        async def writer(k: int) -> None:
            for n in range(100):
                await store.append(inbox, message(k * 1000 + n, body=body))

        await asyncio.gather(*(writer(k) for k in range(4)))  # 3.2 MB without a pause
        wal = tmp_path / "d" / (DB_NAME + "-wal")
        assert wal.stat().st_size < 8_000_000  # 27 MB when it never restarts
        assert (await store.status(inbox)).messages == 400
    finally:
        await store.close()


async def test_a_busy_log_restarts_with_writers_in_two_stores(tmp_path, monkeypatch):
    """The server's and its SMTP workers' writers commit in turn without pause."""
    monkeypatch.setattr(checkpoint, "RESTART_FRAMES", 64)
    store, inbox = await open_store(tmp_path / "d")
    worker = SqliteStore(tmp_path / "d", report=lambda changes: None)
    await worker.open()
    try:
        body = "z" * 8000

        async def writer(target: SqliteStore, k: int) -> None:
            for n in range(100):
                await target.append(inbox, message(k * 1000 + n, body=body))

        await asyncio.gather(*(writer(s, k) for k, s in enumerate([store, worker] * 2)))
        wal = tmp_path / "d" / (DB_NAME + "-wal")
        assert wal.stat().st_size < 8_000_000
        assert (await store.status(inbox)).messages == 400
    finally:
        await worker.close()
        await store.close()
