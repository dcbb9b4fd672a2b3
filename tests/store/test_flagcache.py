"""The cached SELECT flag list always equals a fresh read, whatever changed in between."""

from __future__ import annotations

import random

import pytest

from postroom.store import flagcache
from postroom.store.base import FlagMode
from postroom.store.sqlite import SqliteStore
from tests.store.conftest import message


@pytest.fixture(autouse=True)
def cache_small_mailboxes(monkeypatch):
    monkeypatch.setattr(flagcache, "MIN_MESSAGES", 1)


async def fresh(store, mailbox_id):
    """Every present message, read without the cache."""
    return list((await store.changes_since(mailbox_id, 0)).changed)


async def test_cache_follows_every_kind_of_change(store, account, inbox):
    archive = await store.get_mailbox(account.id, "Archive")
    rng = random.Random(7)
    for n in range(30):
        await store.append(inbox.id, message(n))
    for step in range(60):
        assert await store.message_flags(inbox.id) == await fresh(store, inbox.id)
        uids = await store.uids(inbox.id)
        pick = rng.sample(uids, min(len(uids), rng.randint(1, 4)))
        action = rng.choice(["append", "flag", "expunge", "move", "copy_in", "none"])
        if action == "append":
            await store.append(inbox.id, message(100 + step), ["\\Seen"])
        elif action == "flag":
            flag = rng.choice(["\\Seen", "\\Flagged", "Work", "\\Deleted"])
            await store.store_flags(inbox.id, pick, rng.choice(list(FlagMode)), [flag])
        elif action == "expunge":
            await store.store_flags(inbox.id, pick, FlagMode.ADD, ["\\Deleted"])
            await store.expunge(inbox.id, pick)
        elif action == "move":
            await store.move(inbox.id, pick, archive.id)
        elif action == "copy_in":
            await store.append(archive.id, message(200 + step))
            await store.copy(archive.id, await store.uids(archive.id), inbox.id)
    assert await store.message_flags(inbox.id) == await fresh(store, inbox.id)


async def test_cache_is_not_shared_with_a_new_incarnation(store, account):
    box = await store.create_mailbox(account.id, "Box")
    await store.append(box.id, message(1))
    assert len(await store.message_flags(box.id)) == 1
    await store.delete_mailbox(account.id, "Box")
    again = await store.create_mailbox(account.id, "Box")  # may reuse the row id
    assert await store.message_flags(again.id) == []


async def test_cache_sees_other_processes(tmp_path):
    first, second = SqliteStore(tmp_path / "d"), SqliteStore(tmp_path / "d")
    await first.open()
    await second.open()
    try:
        await first.add_domain("example.org")
        account = await first.create_account("a@example.org", "h", None)
        inbox = await first.get_mailbox(account.id, "INBOX")
        await first.append(inbox.id, message(1))
        assert len(await first.message_flags(inbox.id)) == 1
        await second.append(inbox.id, message(2))
        await second.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Seen"])
        assert await first.message_flags(inbox.id) == await fresh(first, inbox.id)
        assert len(await first.message_flags(inbox.id)) == 2
    finally:
        await first.close()
        await second.close()


def test_cache_is_bounded(monkeypatch):
    from postroom.store.base import MessageFlags

    monkeypatch.setattr(flagcache, "MAX_CACHED", 10)
    cache = flagcache.FlagsCache(lambda bits, kw: frozenset())
    items = [MessageFlags(uid, frozenset(), 1) for uid in range(1, 5)]
    for mailbox_id in range(5):
        cache._put(mailbox_id, flagcache._Entry(1, 1, items))
    assert cache._size <= 10
    assert list(cache._entries) == [3, 4]
