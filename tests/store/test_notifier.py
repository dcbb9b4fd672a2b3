"""Changes are published after commit, one per effect, with the new MODSEQ."""

from __future__ import annotations

import pytest

from postroom.store.base import FlagMode, OverQuota
from postroom.store.notifier import ChangeKind
from tests.store.conftest import message


async def test_events(store, account, inbox):
    with store.notifier.subscribe(account.id) as sub:
        await store.append(inbox.id, message(1))
        await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
        await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])  # no change: no event
        await store.expunge(inbox.id)
        box = await store.create_mailbox(account.id, "Box")
        await store.rename_mailbox(account.id, "Box", "Box2")
        await store.append(box.id, message(2))
        archive = await store.get_mailbox(account.id, "Archive")
        await store.move(box.id, [1], archive.id)
        await store.delete_mailbox(account.id, "Box2")
        changes = sub.drain()
    kinds = [(c.mailbox_id, c.kind) for c in changes]
    assert kinds == [
        (inbox.id, ChangeKind.MESSAGES_ADDED),
        (inbox.id, ChangeKind.FLAGS_CHANGED),
        (inbox.id, ChangeKind.EXPUNGED),
        (box.id, ChangeKind.MAILBOX_CREATED),
        (box.id, ChangeKind.MAILBOX_RENAMED),
        (box.id, ChangeKind.MESSAGES_ADDED),
        (box.id, ChangeKind.EXPUNGED),
        (archive.id, ChangeKind.MESSAGES_ADDED),
        (box.id, ChangeKind.MAILBOX_DELETED),
    ]
    assert [c.modseq for c in changes[:3]] == [2, 3, 4]
    assert all(c.account_id == account.id for c in changes)


async def test_event_follows_commit(store, account, inbox):
    """A session woken by an event already sees the change in the store."""
    with store.notifier.subscribe(account.id) as sub:
        await store.append(inbox.id, message(1))
        change = await sub.get()
        assert change.kind is ChangeKind.MESSAGES_ADDED
        assert await store.uids(change.mailbox_id) == [1]


async def test_other_accounts_are_not_told(store, account, inbox):
    other = await store.create_account("carol@example.org", "h", None)
    with store.notifier.subscribe(other.id) as sub:
        await store.append(inbox.id, message(1))
        assert sub.drain() == []


async def test_failed_operation_announces_nothing(store, account, inbox):
    await store.set_quota(account.address, 1)
    with store.notifier.subscribe(account.id) as sub:
        with pytest.raises(OverQuota):
            await store.append(inbox.id, message(1))
        assert sub.drain() == []
