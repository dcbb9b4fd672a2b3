"""Mailbox names, hierarchy, rename (INBOX too), subscriptions and STATUS counters."""

from __future__ import annotations

import pytest

from postroom.store.base import AlreadyExists, FlagMode, Invalid, NotFound
from tests.store.conftest import message


async def test_create_get_delete(store, account):
    created = await store.create_mailbox(account.id, "Projects/2024", "\\Flagged")
    assert created.name == "Projects/2024"
    assert created.special_use == "\\Flagged"
    assert not created.subscribed
    assert created.uidnext == 1
    assert await store.get_mailbox(account.id, "Projects/2024") == created
    assert await store.get_mailbox(account.id, "projects/2024") is None  # exact, not INBOX
    assert await store.get_mailbox_by_id(created.id) == created
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(account.id, "Projects/2024")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(account.id, "inbox")
    await store.delete_mailbox(account.id, "Projects/2024")
    assert await store.get_mailbox_by_id(created.id) is None
    with pytest.raises(NotFound):
        await store.delete_mailbox(account.id, "Projects/2024")
    with pytest.raises(NotFound):
        await store.create_mailbox(9999, "x")


async def test_inbox_is_case_insensitive_and_undeletable(store, account, inbox):
    assert await store.get_mailbox(account.id, "iNbOx") == inbox
    with pytest.raises(Invalid):
        await store.delete_mailbox(account.id, "Inbox")


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "a*", "a%b", "a\x00b", "x" * 1001])
async def test_bad_names(store, account, name):
    with pytest.raises(Invalid):
        await store.create_mailbox(account.id, name)


async def test_new_incarnation_gets_new_uidvalidity(store, account):
    first = await store.create_mailbox(account.id, "Box")
    await store.delete_mailbox(account.id, "Box")
    second = await store.create_mailbox(account.id, "Box")
    assert second.uidvalidity > first.uidvalidity


async def test_delete_keeps_children_and_releases_usage(store, account):
    box = await store.create_mailbox(account.id, "a")
    child = await store.create_mailbox(account.id, "a/b")
    await store.append(box.id, message(1))
    assert (await store.usage(account.id)).messages == 1
    await store.delete_mailbox(account.id, "a")
    assert (await store.usage(account.id)).messages == 0
    assert (await store.usage(account.id)).bytes == 0
    assert await store.get_mailbox_by_id(child.id) is not None


async def test_rename_moves_children_and_subscriptions(store, account):
    a = await store.create_mailbox(account.id, "a")
    ab = await store.create_mailbox(account.id, "a/b")
    abc = await store.create_mailbox(account.id, "a/b/c")
    other = await store.create_mailbox(account.id, "ab")  # not a child of "a"
    await store.set_subscribed(account.id, "a/b", True)
    uid = (await store.append(ab.id, message(1))).uid
    await store.rename_mailbox(account.id, "a", "x/y")
    names = {m.id: m.name for m in await store.list_mailboxes(account.id)}
    assert names[a.id] == "x/y"
    assert names[ab.id] == "x/y/b"
    assert names[abc.id] == "x/y/b/c"
    assert names[other.id] == "ab"
    renamed = await store.get_mailbox_by_id(ab.id)
    assert renamed.uidvalidity == ab.uidvalidity
    assert renamed.subscribed
    assert "x/y/b" in await store.list_subscriptions(account.id)
    assert await store.uids(ab.id) == [uid]


async def test_rename_errors(store, account):
    await store.create_mailbox(account.id, "a")
    await store.create_mailbox(account.id, "a/b")
    await store.create_mailbox(account.id, "z/b")
    await store.create_mailbox(account.id, "taken")
    with pytest.raises(NotFound):
        await store.rename_mailbox(account.id, "missing", "new")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "a", "taken")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "a", "INBOX")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "a", "z")  # its child a/b would become z/b
    with pytest.raises(Invalid):
        await store.rename_mailbox(account.id, "a", "a/b/c")


async def test_rename_inbox(store, account, inbox):
    """RFC 9051 §6.3.6: messages move to a new mailbox, INBOX stays, empty."""
    await store.create_mailbox(account.id, "INBOX/child")
    for n in range(3):
        await store.append(inbox.id, message(n), ["\\Flagged"] if n == 1 else [])
    await store.rename_mailbox(account.id, "inbox", "Old Mail")
    old_mail = await store.get_mailbox(account.id, "Old Mail")
    assert old_mail is not None and old_mail.uidvalidity != inbox.uidvalidity
    assert await store.uids(inbox.id) == []
    flags = await store.message_flags(old_mail.id)
    assert [f.uid for f in flags] == [1, 2, 3]
    assert [f.flags for f in flags] == [frozenset(), {"\\Flagged"}, frozenset()]
    assert (await store.get_mailbox(account.id, "INBOX")).uidnext == 4
    assert (await store.changes_since(inbox.id, 1)).expunged == (1, 2, 3)
    assert await store.get_mailbox(account.id, "INBOX/child") is not None
    assert (await store.usage(account.id)).messages == 3


async def test_subscriptions(store, account):
    await store.set_subscribed(account.id, "Does/Not/Exist", True)  # RFC 9051 §6.3.7
    await store.set_subscribed(account.id, "inbox", False)
    subs = await store.list_subscriptions(account.id)
    assert "Does/Not/Exist" in subs
    assert "INBOX" not in subs
    assert not (await store.get_mailbox(account.id, "INBOX")).subscribed
    await store.set_subscribed(account.id, "INBOX", True)
    await store.set_subscribed(account.id, "INBOX", True)  # idempotent
    assert (await store.get_mailbox(account.id, "INBOX")).subscribed
    # Deleting a mailbox does not unsubscribe it (RFC 9051 §6.3.7).
    await store.create_mailbox(account.id, "Temp")
    await store.set_subscribed(account.id, "Temp", True)
    await store.delete_mailbox(account.id, "Temp")
    assert "Temp" in await store.list_subscriptions(account.id)


async def test_status_counters(store, account, inbox):
    for n in range(4):
        await store.append(inbox.id, message(n), ["\\Seen"] if n < 2 else [])
    status = await store.status(inbox.id)
    assert status.messages == 4
    assert status.unseen == 2
    assert status.first_unseen_uid == 3
    assert status.recent == 4
    assert status.deleted == 0
    assert status.size == sum(len(message(n)) for n in range(4))
    assert status.uidnext == 5
    assert status.uidvalidity == inbox.uidvalidity
    await store.store_flags(inbox.id, [1, 3], FlagMode.ADD, ["\\Deleted"])
    await store.store_flags(inbox.id, [3], FlagMode.ADD, ["\\Seen"])
    await store.claim_recent(inbox.id)
    status = await store.status(inbox.id)
    assert (status.unseen, status.deleted, status.first_unseen_uid, status.recent) == (1, 2, 4, 0)
    await store.expunge(inbox.id)
    status = await store.status(inbox.id)
    assert (status.messages, status.unseen, status.deleted) == (2, 1, 0)
    with pytest.raises(NotFound):
        await store.status(9999)
