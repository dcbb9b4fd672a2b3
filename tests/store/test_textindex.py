"""Texts move from fts_pending into the trigram index in the background, and go with their
message."""

from __future__ import annotations

import asyncio
import contextlib
import queue

from postroom.store import query as q
from postroom.store import sqlite, textindex
from postroom.store.base import FlagMode, Mailbox
from postroom.store.describe import UNDESCRIBED
from postroom.store.sqlite import SqliteStore
from tests.store.conftest import message


async def counts(store) -> tuple[int, int]:
    return await store._read(
        lambda conn: (
            conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0],
            conn.execute("SELECT count(*) FROM fts").fetchone()[0],
        )
    )


async def wait_indexed(store, expected: int) -> None:
    for _ in range(500):
        if await counts(store) == (0, expected):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"index never settled: {await counts(store)}")


async def test_texts_are_indexed_and_released(store, inbox):
    for n in range(5):
        await store.append(inbox.id, message(n, body=f"needle{n} in a haystack"))
    await wait_indexed(store, 5)
    assert await store.search(inbox.id, q.Body("NEEDLE3")) == [4]
    assert await indexed_with(store, "nee") == 5
    await store.store_flags(inbox.id, [2, 4], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    assert await counts(store) == (0, 3)
    assert await indexed_with(store, "nee") == 3  # the index forgot exactly the texts that went
    await store.store_flags(inbox.id, [1, 3, 5], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    assert await counts(store) == (0, 0)
    assert await indexed_with(store, "nee") == 0


async def indexed_with(store, trigram: str) -> int:
    """Texts holding ``trigram`` according to the index itself (fts5vocab), not its content."""

    def read(conn, ctx) -> int:
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.v USING fts5vocab(main, fts, row)")
        row = conn.execute("SELECT doc FROM temp.v WHERE term = ?", (trigram,)).fetchone()
        return 0 if row is None else row[0]

    return await store._write(read)


async def test_pending_texts_survive_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    first = SqliteStore(tmp_path / "d")
    await first.open()
    await first.add_domain("example.org")
    account = await first.create_account("a@example.org", "h", None)
    inbox = await first.get_mailbox(account.id, "INBOX")
    await first.append(inbox.id, message(1, body="remember me"))
    assert await counts(first) == (1, 0)
    await first.close()
    monkeypatch.undo()
    second = SqliteStore(tmp_path / "d")
    await second.open()
    try:
        await wait_indexed(second, 1)
        meta = await second._read(lambda conn: conn.execute("SELECT meta FROM blobs").fetchone())
        assert meta[0] != UNDESCRIBED  # parsed by the background step after the restart
        assert await second.search(inbox.id, q.Body("remember")) == [1]
    finally:
        await second.close()


async def test_a_message_expunged_before_indexing_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    store, inbox = await store_with_inbox(tmp_path / "d")
    try:
        await store.append(inbox.id, message(1), ["\\Deleted"])
        await store.expunge(inbox.id)
        assert await counts(store) == (0, 0)
    finally:
        await store.close()


async def test_backlog_is_bounded_under_sustained_writes(tmp_path, monkeypatch):
    """Writers are slowed down rather than letting unindexed texts pile up."""
    from postroom.store import textindex, writer

    monkeypatch.setattr(writer, "BACKGROUND_IDLE", 60.0)  # never idle during the test
    monkeypatch.setattr(writer, "BACKGROUND_EVERY", 10_000)
    monkeypatch.setattr(writer, "BACKLOG", 5)
    monkeypatch.setattr(textindex, "STEP_ROWS", 2)
    store, inbox = await store_with_inbox(tmp_path / "d")
    try:
        for n in range(30):
            await store.append(inbox.id, message(n))
            pending, _ = await counts(store)
            assert pending <= 6
    finally:
        await store.close()


async def stored_texts(store) -> list[tuple[str, int | None]]:
    return await store._read(
        lambda conn: conn.execute("SELECT body, body_at FROM texts ORDER BY blob").fetchall()
    )


async def test_a_raw_body_is_not_stored_twice(store, inbox):
    """A plain body that is its own text is read from the stored message (schema version 5);
    searches find it whether the text is indexed yet or not."""
    plain = b"Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9fe, caf\xc3\xa9 needle\r\n"
    quoted = (
        b"Subject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 needle\r\n"
    )
    latin1 = b"Subject: latin\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9 needle\r\n"
    for data in (plain, quoted, latin1):
        await store.append(inbox.id, data)
    pending = [await store.search(inbox.id, q.Body(w)) for w in ("CAFÉ NEE", "grüße", "needle")]
    in_db = len(plain) <= store.inline_max  # a message in a file keeps its text copy
    assert await stored_texts(store) == [
        ("", plain.index(b"\r\n\r\n") + 4) if in_db else ("Grüße, café needle\r\n", None),
        ("café needle\r\n", None),
        ("caf\ufffd needle\r\n", None),
    ]
    await wait_indexed(store, 3)
    indexed = [await store.search(inbox.id, q.Body(w)) for w in ("CAFÉ NEE", "grüße", "needle")]
    assert pending == indexed == [[1, 2], [1], [1, 2, 3]]


async def store_with_inbox(path) -> tuple[SqliteStore, Mailbox]:
    """An open store with one account, and that account's INBOX."""
    store = SqliteStore(path)
    await store.open()
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    return store, inbox


async def pending_store(path) -> SqliteStore:
    """A closed store whose two texts wait for the index."""
    store, inbox = await store_with_inbox(path)
    for n in range(2):
        await store.append(inbox.id, message(n, body=f"needle{n}"))
    await store.close()
    return store


async def test_vocabularies_are_made_before_the_write_lock_is_taken(tmp_path, monkeypatch):
    """Deliveries of other writers commit while the step does its costly part."""
    monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    store = await pending_store(tmp_path / "d")
    made = []
    monkeypatch.setattr(textindex, "vocabulary", lambda *texts: made.append(texts) or "w")
    seen_at_lock = []

    @contextlib.contextmanager
    def write():
        seen_at_lock.append(len(made))
        yield

    with contextlib.closing(store._connect()) as conn:
        assert textindex.index_step(conn, write(), store._describe_blob) == 0
        assert conn.execute("SELECT count(*) FROM text_words").fetchone()[0] == 2
    assert seen_at_lock == [2]


async def test_a_text_that_goes_while_the_step_reads_is_not_indexed(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    store = await pending_store(tmp_path / "d")

    @contextlib.contextmanager
    def write():  # meanwhile another writer expunges the first message, and its text goes
        with contextlib.closing(store._connect()) as other:
            other.execute("DELETE FROM messages WHERE uid = 1")
            other.execute("DELETE FROM blobs WHERE refcount <= 0")
        yield

    with contextlib.closing(store._connect()) as conn:
        assert textindex.index_step(conn, write(), store._describe_blob) == 0
        rows = conn.execute("SELECT words FROM text_words").fetchall()
    assert len(rows) == 1 and "needle1" in rows[0][0]


async def test_a_backlog_drains_step_after_step_once_idle(tmp_path, monkeypatch):
    """The idle wait comes once: then steps follow each other while nothing else comes."""
    from postroom.store import writer

    waits: list[tuple[int, str]] = []

    class Recording(queue.SimpleQueue):
        def get(self, block=True, timeout=None):
            waits.append((id(self), "idle wait" if timeout else "wait" if block else "no wait"))
            return super().get(block, timeout)

        def get_nowait(self):
            return self.get(False)

    monkeypatch.setattr(writer.queue, "SimpleQueue", Recording)
    monkeypatch.setattr(writer, "BACKGROUND_IDLE", 0.2)
    monkeypatch.setattr(writer, "BACKGROUND_MIN", 10_000)  # no step while appending
    monkeypatch.setattr(textindex, "STEP_ROWS", 2)
    store, inbox = await store_with_inbox(tmp_path / "d")
    writes = id(store._writer._queue)
    try:
        for n in range(10):
            await store.append(inbox.id, message(n))
        waits.clear()
        assert await store.text_index_settled(timeout=30)
        await asyncio.sleep(0.1)  # the writer is back to waiting for work
    finally:
        await store.close()
    kinds = [kind for queue_id, kind in waits if queue_id == writes]
    # Five steps (ten messages, two per step): one idle wait before them (it may have begun
    # before the list was cleared), not one before each.
    assert kinds.count("idle wait") <= 1 and kinds.count("no wait") >= 4
