"""The directory cache (store/directory.py): answers are served from memory while nothing in
the directory changed, and dropped in every store on the folder -- in this process or any
other -- by any change to domains, aliases or accounts, by a crash, and after MAX_AGE."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom.store.base import StoreError
from postroom.store.directory import Directory
from postroom.store.sqlite import DB_NAME, SqliteStore

DOMAIN = "example.org"


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """Two stores on one folder: what two processes (the server and a worker, or the CLI)
    each have.  ``first`` hosts the domain."""
    first, second = SqliteStore(tmp_path / "data"), SqliteStore(tmp_path / "data")
    await first.open()
    await second.open()
    try:
        await first.add_domain(DOMAIN)
        yield first, second
    finally:
        await second.close()
        await first.close()


def edit_behind_its_back(data: Path, sql: str, *args: object) -> None:
    """Change the database with plain SQL, as no postroom process would: no news of it."""
    conn = sqlite3.connect(data / DB_NAME, isolation_level=None)
    try:
        conn.execute(sql, args)
    finally:
        conn.close()


async def test_answers_come_from_memory_while_nothing_changes(stores):
    first, _ = stores
    account = await first.create_account(f"a@{DOMAIN}", "hash", None, quota=1000)
    assert await first.get_account(f"a@{DOMAIN}") == account
    edit_behind_its_back(first.data_dir, "UPDATE accounts SET quota = 5")
    assert (await first.get_account(f"a@{DOMAIN}")).quota == 1000  # the cached answer


async def test_an_account_made_in_another_store_is_found(stores):
    first, second = stores
    assert await first.get_account(f"new@{DOMAIN}") is None  # cached: no such account
    account = await second.create_account(f"new@{DOMAIN}", "hash", None)
    assert await first.get_account(f"new@{DOMAIN}") == account
    inbox = await second.get_mailbox(account.id, "INBOX")
    assert await first.inbox_id(account.id) == inbox.id


async def test_removed_and_changed_accounts_are_seen_elsewhere(stores):
    first, second = stores
    account = await first.create_account(f"a@{DOMAIN}", "hash", None)
    assert await first.inbox_id(account.id) is not None
    await second.set_quota(f"a@{DOMAIN}", 5000)
    assert (await first.get_account(f"a@{DOMAIN}")).quota == 5000
    await second.remove_account(f"a@{DOMAIN}")
    assert await first.get_account(f"a@{DOMAIN}") is None
    assert await first.inbox_id(account.id) is None


async def test_domains_and_aliases_changed_elsewhere_are_seen(stores):
    first, second = stores
    assert not await first.has_domain("other.example")
    await second.add_domain("other.example")
    assert await first.has_domain("other.example")
    assert await first.get_alias(f"list@{DOMAIN}") is None
    await second.add_alias(f"list@{DOMAIN}", [f"a@{DOMAIN}", "b@remote.example"])
    assert (await first.get_alias(f"list@{DOMAIN}")).targets == (
        f"a@{DOMAIN}",
        "b@remote.example",
    )
    await second.remove_alias(f"list@{DOMAIN}", ["b@remote.example"])
    assert (await first.get_alias(f"list@{DOMAIN}")).targets == (f"a@{DOMAIN}",)
    await second.remove_alias(f"list@{DOMAIN}")
    assert await first.get_alias(f"list@{DOMAIN}") is None
    await second.remove_domain("other.example")
    assert not await first.has_domain("other.example")


async def test_an_answer_looked_up_while_a_change_commits_is_not_kept(stores):
    """The lookup runs after the change began and before its commit, so it reads the old
    state under the new generation: the write once committed must drop it."""
    first, second = stores

    def op(conn, ctx):
        second._directory_changes(ctx)
        conn.execute("INSERT INTO domains (name) VALUES ('racing.example')")
        looked_up = first._directory.get(
            ("domain", "racing.example"),
            lambda: first._lookup(
                lambda c: (
                    c.execute("SELECT 1 FROM domains WHERE name = 'racing.example'").fetchone()
                    is not None
                )
            ),
        )
        assert looked_up is False  # not committed yet

    await second._write(op)
    assert await first.has_domain("racing.example")


async def test_a_change_made_by_another_process_is_seen(stores, tmp_path):
    first, _ = stores
    assert await first.get_alias(f"postmaster@{DOMAIN}") is None
    script = (
        "import asyncio, sys\n"
        "from postroom.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    store = SqliteStore(sys.argv[1])\n"
        "    await store.open()\n"
        f"    await store.add_alias('postmaster@{DOMAIN}', ['root@{DOMAIN}'])\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(first.data_dir)], check=True, timeout=60)
    assert (await first.get_alias(f"postmaster@{DOMAIN}")).targets == (f"root@{DOMAIN}",)


async def test_opening_after_a_crash_drops_every_cached_answer(stores, tmp_path):
    """A process killed between its commit and its news of it: the next store opened on the
    folder finds its owner marker and tells every other store to look up again."""
    first, _ = stores
    await first.create_account(f"a@{DOMAIN}", "hash", None, quota=1000)
    assert (await first.get_account(f"a@{DOMAIN}")).quota == 1000
    edit_behind_its_back(first.data_dir, "UPDATE accounts SET quota = 5")  # the commit
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    (first.data_dir / "blobs" / "owners" / f"{int(dead.stdout)}.0123").touch()
    third = SqliteStore(first.data_dir)
    await third.open()
    await third.close()
    assert (await first.get_account(f"a@{DOMAIN}")).quota == 5


def test_answers_are_used_for_max_age_at_most(tmp_path):
    lookups = []

    def lookup() -> int:
        lookups.append(1)
        return len(lookups)

    kept, fresh = Directory(tmp_path), Directory(tmp_path, max_age=0)
    kept.open()
    fresh.open()
    try:
        assert [kept.get("key", lookup) for _ in range(3)] == [1, 1, 1]
        assert [fresh.get("key", lookup) for _ in range(2)] == [2, 3]
        fresh.changed()
        assert kept.get("key", lookup) == 4
    finally:
        kept.close()
        fresh.close()


async def test_a_closed_store_says_so_rather_than_answer_from_memory(tmp_path):
    store = SqliteStore(tmp_path / "data")
    await store.open()
    await store.add_domain(DOMAIN)
    assert await store.has_domain(DOMAIN)
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.has_domain(DOMAIN)
