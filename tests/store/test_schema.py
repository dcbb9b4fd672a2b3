"""Schema versioning: PRAGMA user_version and ordered migrations."""

from __future__ import annotations

import sqlite3

import pytest

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
