"""Schema versioning: PRAGMA user_version and ordered migrations."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from postroom.store import query as q
from postroom.store import schema
from postroom.store.sqlite import DB_NAME, SqliteStore


def test_migrate_fresh_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    schema.migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    schema.migrate(conn)  # already current: nothing to do
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"accounts", "mailboxes", "messages", "blobs", "expunged", "fts"} <= tables
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    with pytest.raises(schema.SchemaError):
        schema.migrate(conn)
    conn.close()


async def test_store_database_is_wal_with_foreign_keys(tmp_path):
    store = SqliteStore(tmp_path / "d")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "d" / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_version_3_drops_the_per_row_flag_trigger(tmp_path):
    """From version 3 store_flags keeps the unseen/deleted counters with one UPDATE."""
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    for number in range(2):
        for statement in schema._statements(schema.MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    assert "messages_flags" in {r[0] for r in conn.execute(triggers)}
    schema.migrate(conn)
    assert "messages_flags" not in {r[0] for r in conn.execute(triggers)}
    assert {"messages_insert", "messages_delete"} <= {r[0] for r in conn.execute(triggers)}
    conn.close()


async def test_version_4_reindexes_texts_by_vocabulary(tmp_path):
    """Texts indexed whole (version 3) go back to fts_pending and are searchable meanwhile,
    then land in the vocabulary index."""
    folder = tmp_path / "d"
    folder.mkdir()
    conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for number in range(3):
        for statement in schema._statements(schema.MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    store = SqliteStore(folder)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("a@example.org", "h", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        await store.append(inbox.id, b"Subject: old\r\n\r\nIndexed the old way, whole.\r\n")
    finally:
        await store.close()
    # Put the text where version 3 kept it, and the database back at version 3.
    conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    rows = conn.execute("SELECT blob, headers, body FROM fts_pending").fetchall()
    rows += conn.execute("SELECT rowid, headers, body FROM fts").fetchall()
    conn.execute("DROP TABLE fts")
    conn.execute(
        "CREATE VIRTUAL TABLE fts USING fts5(headers, body, tokenize='trigram', detail=none)"
    )
    conn.execute("DELETE FROM fts_pending")
    conn.executemany("INSERT INTO fts (rowid, headers, body) VALUES (?, ?, ?)", rows)
    conn.execute("PRAGMA user_version = 3")
    conn.close()

    store = SqliteStore(folder)
    await store.open()
    try:
        assert await store.search(inbox.id, q.Body("OLD WAY")) == [1]
        for _ in range(500):
            left = await store._read(
                lambda c: c.execute("SELECT count(*) FROM fts_pending").fetchone()[0]
            )
            if not left:
                break
            await asyncio.sleep(0.01)
        words = await store._read(lambda c: c.execute("SELECT words FROM fts").fetchall())
        assert [w for (w,) in words] == ["old subject indexed the way whole"]
        assert await store.search(inbox.id, q.Body("ld wa")) == [1]  # no trigram: scanned
        assert await store.search(inbox.id, q.Body("old whole")) == []
        assert await store.search(inbox.id, q.Body("the old w")) == [1]
    finally:
        await store.close()
