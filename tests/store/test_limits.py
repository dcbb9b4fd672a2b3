"""Every bound the store enforces on what clients can make it keep (docs/limits.md)."""

from __future__ import annotations

import pytest

from postroom.store import sqlite
from postroom.store.base import FlagMode, Invalid
from tests.store.conftest import message


async def test_mailboxes_per_account(store, account, monkeypatch):
    monkeypatch.setattr(sqlite, "MAX_MAILBOXES", 8)  # 6 default mailboxes already
    await store.create_mailbox(account.id, "a")
    await store.create_mailbox(account.id, "b")
    with pytest.raises(Invalid):
        await store.create_mailbox(account.id, "c")


async def test_subscriptions_per_account(store, account, monkeypatch):
    monkeypatch.setattr(sqlite, "MAX_SUBSCRIPTIONS", 7)
    await store.set_subscribed(account.id, "x", True)
    with pytest.raises(Invalid):
        await store.set_subscribed(account.id, "y", True)
    await store.set_subscribed(account.id, "x", False)  # unsubscribing is always possible


async def test_keywords_per_message(store, inbox, monkeypatch):
    monkeypatch.setattr(sqlite, "MAX_KEYWORDS", 3)
    with pytest.raises(Invalid):
        await store.append(inbox.id, message(), ["a", "b", "c", "d"])
    await store.append(inbox.id, message(), ["a", "b"])
    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["c"])
    with pytest.raises(Invalid):
        await store.store_flags(inbox.id, [1], FlagMode.ADD, ["d"])
    assert (await store.message_flags(inbox.id))[0].flags == {"a", "b", "c"}


async def test_keyword_length(store, inbox):
    with pytest.raises(Invalid):
        await store.append(inbox.id, message(), ["k" * (sqlite.MAX_KEYWORD + 1)])
    await store.append(inbox.id, message(), ["k" * sqlite.MAX_KEYWORD])


async def test_mailbox_depth(store, account):
    deep = "/".join(["d"] * sqlite.MAX_MAILBOX_DEPTH)
    await store.create_mailbox(account.id, deep)
    with pytest.raises(Invalid):
        await store.create_mailbox(account.id, deep + "/d")


async def test_alias_targets(store, account, monkeypatch):
    monkeypatch.setattr(sqlite, "MAX_ALIAS_TARGETS", 2)
    await store.add_alias("list@example.org", ["a@example.org", "b@example.org"])
    with pytest.raises(Invalid):
        await store.add_alias("list@example.org", ["c@example.org"])
    assert len((await store.get_alias("list@example.org")).targets) == 2
