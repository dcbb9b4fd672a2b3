"""Schema versioning: PRAGMA user_version and ordered migrations."""

from __future__ import annotations

import sqlite3

import pytest

from postroom.store import query as q
from postroom.store import schema
from postroom.store.base import FlagMode
from postroom.store.sqlite import DB_NAME, SqliteStore
from postroom.store.textindex import BODY_TEXT


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


async def test_version_4_moves_texts_out_of_the_index(tmp_path):
    """Version 3 kept texts inside the FTS table (or in fts_pending until indexed): version 4
    moves both into ``texts``, searchable at once, and rebuilds the vocabulary index."""
    folder = tmp_path / "d"
    store = SqliteStore(folder)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("a@example.org", "h", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        for text in ("Indexed the old way, whole.", "Still pending when upgraded."):
            await store.append(inbox.id, f"Subject: old\r\n\r\n{text}\r\n".encode())
        assert await store.text_index_settled(timeout=10)  # described, as every message was
    finally:
        await store.close()
    # Back to version 3's layout: the first text indexed whole, the second pending.
    conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
    rows = conn.execute(f"SELECT blob, headers, {BODY_TEXT} FROM texts t ORDER BY blob").fetchall()
    for statement in (
        "DROP TRIGGER blobs_delete",
        "DROP TRIGGER text_words_delete",
        "DROP TABLE fts",
        "DROP TABLE text_words",
        "DROP TABLE fts_pending",
        "DROP TABLE texts",
        "CREATE VIRTUAL TABLE fts USING fts5(headers, body, tokenize='trigram', detail=none)",
        "CREATE TABLE fts_pending (blob INTEGER PRIMARY KEY, headers TEXT NOT NULL,"
        " body TEXT NOT NULL)",
        "CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN"
        " DELETE FROM fts WHERE rowid = old.id; DELETE FROM fts_pending WHERE blob = old.id; END",
        "PRAGMA user_version = 3",
    ):
        conn.execute(statement)
    conn.execute("INSERT INTO fts (rowid, headers, body) VALUES (?, ?, ?)", rows[0])
    conn.execute("INSERT INTO fts_pending (blob, headers, body) VALUES (?, ?, ?)", rows[1])
    conn.close()

    store = SqliteStore(folder)
    await store.open()
    try:
        assert await store.search(inbox.id, q.Body("OLD WAY")) == [1]
        assert await store.search(inbox.id, q.Body("pending")) == [2]
        assert await store.text_index_settled(timeout=10)
        words = await store._read(
            lambda c: c.execute("SELECT words FROM text_words ORDER BY blob").fetchall()
        )
        assert words == [
            ("old subject indexed the way whole",),
            ("old subject still pending when upgraded",),
        ]
        assert await store.search(inbox.id, q.Body("ld wa")) == [1]  # no trigram: scanned
        assert await store.search(inbox.id, q.Body("the old w")) == [1]
        assert await store.search(inbox.id, q.Text("SUBJECT")) == [1, 2]
        assert await store.search(inbox.id, q.Body("old whole")) == []
        await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
        await store.expunge(inbox.id)
        assert await store.search(inbox.id, q.Body("whole")) == []
        count = await store._read(lambda c: c.execute("SELECT count(*) FROM texts").fetchone()[0])
        assert count == 1
    finally:
        await store.close()
