"""Appending, delivering, fetching, flags, expunge, copy/move, MODSEQ and \\Recent."""

from __future__ import annotations

import hashlib
import random

import pytest

from postroom.mime import ParsedMessage
from postroom.store.base import (
    Delivery,
    FlagMode,
    Invalid,
    NotFound,
    OverQuota,
)
from postroom.store.sqlite import INLINE_MAX, SqliteStore
from tests.store.conftest import message, stored_blobs


async def test_fetch_ranges_gaps_and_scattered_uids(store, inbox):
    """Dense ranges (read as one key range), ranges with gaps, scattered and repeated UIDs,
    in any order: always exactly the messages asked for that exist, in UID order."""
    for n in range(1, 31):
        await store.append(inbox.id, message(n))
    await store.store_flags(inbox.id, [5, 6, 20], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    cases = [
        (list(range(1, 31)), [u for u in range(1, 31) if u not in (5, 6, 20)]),
        ([9, 3, 4, 8, 7], [3, 4, 7, 8, 9]),
        ([2, 2, 3], [2, 3]),
        ([1, 30], [1, 30]),
        ([4, 5, 6, 7], [4, 7]),
        ([], []),
        ([25, 99, 1000], [25]),
    ]
    for asked, found in cases:
        assert [m.uid for m in await store.fetch(inbox.id, asked)] == found, asked
    with pytest.raises(NotFound):
        await store.fetch(9999, [])


async def test_append_fetch_read_blob(store, inbox):
    data = message(1, subject="Greetings")
    result = await store.append(inbox.id, data, ["\\Seen", "$Label"], internaldate=1700000000.5)
    assert result.uid == 1
    assert result.uidvalidity == inbox.uidvalidity
    [msg] = await store.fetch(inbox.id, [1, 2, 99])
    assert msg.uid == 1
    assert msg.flags == {"\\Seen", "$Label"}
    assert msg.internaldate == 1700000000.5
    assert msg.size == len(data)
    assert msg.blob_id == hashlib.sha256(data).hexdigest()
    assert ParsedMessage.from_bytes(msg.meta).headers["subject"] == "Greetings"
    assert await store.read_blob(msg.blob_id) == data
    with pytest.raises(NotFound):
        await store.read_blob("0" * 64)
    with pytest.raises(NotFound):
        await store.read_blob("../../etc/passwd")
    with pytest.raises(NotFound):
        await store.append(9999, data)
    with pytest.raises(NotFound):
        await store.fetch(9999, [1])


async def test_small_messages_in_the_database_large_ones_in_files(tmp_path):
    store = SqliteStore(tmp_path / "d")
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("a@example.org", "h", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        small = message(1, body="s" * (INLINE_MAX - 500))
        large = message(2, body="l" * INLINE_MAX)
        assert len(small) <= INLINE_MAX < len(large)
        await store.append(inbox.id, small)
        await store.append(inbox.id, large)
        assert set(store._blobs.all_ids()) == {hashlib.sha256(large).hexdigest()}
        assert [await store.read_blob(m.blob_id) for m in await store.fetch(inbox.id, [1, 2])] == [
            small,
            large,
        ]
    finally:
        await store.close()


async def test_uids_ascend_and_are_never_reused(store, inbox):
    for n in range(3):
        await store.append(inbox.id, message(n))
    await store.store_flags(inbox.id, [3], FlagMode.ADD, ["\\Deleted"])
    assert await store.expunge(inbox.id) == [3]
    assert (await store.append(inbox.id, message(9))).uid == 4
    assert await store.uids(inbox.id) == [1, 2, 4]


async def test_flag_validation(store, inbox):
    with pytest.raises(Invalid):
        await store.append(inbox.id, message(), ["\\Bogus"])
    with pytest.raises(Invalid):
        await store.append(inbox.id, message(), ["bad keyword"])
    # \Recent is session state: ignored, never stored (RFC 3501 §2.3.2).
    await store.append(inbox.id, message(), ["\\recent", "\\SEEN"])
    assert (await store.message_flags(inbox.id))[0].flags == {"\\Seen"}


async def test_message_size_limit(tmp_path):
    from postroom.config import Limits

    s = SqliteStore(tmp_path / "d", limits=Limits(message_size=100))
    await s.open()
    try:
        await s.add_domain("example.org")
        account = await s.create_account("a@example.org", "h", None)
        inbox = await s.get_mailbox(account.id, "INBOX")
        with pytest.raises(Invalid):
            await s.append(inbox.id, b"x" * 101)
        await s.append(inbox.id, b"x" * 100)
    finally:
        await s.close()


async def test_store_flags_modes_and_modseq(store, inbox):
    for n in range(3):
        await store.append(inbox.id, message(n))
    base = (await store.status(inbox.id)).highestmodseq
    result = await store.store_flags(inbox.id, [1, 2], FlagMode.ADD, ["\\Flagged", "Work"])
    assert [m.uid for m in result.updated] == [1, 2]
    assert all(m.modseq == base + 1 for m in result.updated)
    assert result.updated[0].flags == {"\\Flagged", "Work"}
    # Keywords compare case-insensitively; an existing spelling is kept.
    result = await store.store_flags(inbox.id, [1], FlagMode.ADD, ["WORK"])
    assert result.updated == ()
    result = await store.store_flags(inbox.id, [1, 2, 3], FlagMode.REMOVE, ["work"])
    assert [(m.uid, m.flags) for m in result.updated] == [
        (1, {"\\Flagged"}),
        (2, {"\\Flagged"}),
    ]
    result = await store.store_flags(inbox.id, [2, 3, 77], FlagMode.REPLACE, ["\\Seen"])
    assert [(m.uid, m.flags) for m in result.updated] == [(2, {"\\Seen"}), (3, {"\\Seen"})]
    flags = {m.uid: m for m in await store.message_flags(inbox.id)}
    assert flags[1].flags == {"\\Flagged"}
    assert flags[2].modseq == flags[3].modseq == (await store.status(inbox.id)).highestmodseq


async def test_unchangedsince(store, inbox):
    """RFC 7162 §3.1.3: messages changed after UNCHANGEDSINCE are refused, others updated."""
    await store.append(inbox.id, message(1))
    await store.append(inbox.id, message(2))
    modseq = (await store.status(inbox.id)).highestmodseq
    await store.store_flags(inbox.id, [2], FlagMode.ADD, ["\\Seen"])
    result = await store.store_flags(
        inbox.id, [1, 2], FlagMode.ADD, ["\\Flagged"], unchangedsince=modseq
    )
    assert [m.uid for m in result.updated] == [1]
    assert result.failed_unchangedsince == (2,)


async def test_expunge_only_deleted_and_given_uids(store, inbox):
    for n in range(5):
        await store.append(inbox.id, message(n))
    await store.store_flags(inbox.id, [1, 2, 4], FlagMode.ADD, ["\\Deleted"])
    assert await store.expunge(inbox.id, [2, 3, 4]) == [2, 4]
    assert await store.uids(inbox.id) == [1, 3, 5]
    assert await store.expunge(inbox.id) == [1]
    assert await store.expunge(inbox.id) == []


async def test_changes_since_and_tombstones(store, inbox):
    for n in range(4):
        await store.append(inbox.id, message(n))
    start = (await store.status(inbox.id)).highestmodseq
    await store.store_flags(inbox.id, [2], FlagMode.ADD, ["\\Seen", "\\Deleted"])
    await store.append(inbox.id, message(9))
    await store.store_flags(inbox.id, [3], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id, [3])
    changes = await store.changes_since(inbox.id, start)
    assert [m.uid for m in changes.changed] == [2, 5]
    assert changes.expunged == (3,)
    assert changes.uidnext == 6
    assert changes.highestmodseq == (await store.status(inbox.id)).highestmodseq
    later = await store.changes_since(inbox.id, changes.highestmodseq)
    assert later.changed == () and later.expunged == ()
    everything = await store.changes_since(inbox.id, 0)
    assert [m.uid for m in everything.changed] == [1, 2, 4, 5]
    with pytest.raises(NotFound):
        await store.changes_since(9999, 0)


async def test_claim_recent(store, inbox):
    await store.append(inbox.id, message(1))
    await store.append(inbox.id, message(2))
    assert await store.claim_recent(inbox.id) == [1, 2]
    assert await store.claim_recent(inbox.id) == []  # another session: not recent any more
    await store.append(inbox.id, message(3))
    assert (await store.status(inbox.id)).recent == 1
    assert await store.claim_recent(inbox.id) == [3]
    with pytest.raises(NotFound):
        await store.claim_recent(9999)


async def test_copy_and_move(store, account, inbox):
    archive = await store.get_mailbox(account.id, "Archive")
    for n in range(3):
        await store.append(inbox.id, message(n), ["\\Flagged"], internaldate=1000.0 + n)
    copied = await store.copy(inbox.id, [3, 1, 42], archive.id)
    assert copied.uidvalidity == archive.uidvalidity
    assert copied.source_uids == (1, 3)
    assert copied.dest_uids == (1, 2)
    [first, _] = await store.fetch(archive.id, [1, 2])
    assert first.flags == {"\\Flagged"} and first.internaldate == 1000.0
    assert (await store.usage(account.id)).messages == 5
    assert len(await stored_blobs(store)) == 3  # copies share the blob

    before = (await store.status(inbox.id)).highestmodseq
    moved = await store.move(inbox.id, [2, 3], archive.id)
    assert moved.source_uids == (2, 3) and moved.dest_uids == (3, 4)
    assert await store.uids(inbox.id) == [1]
    assert (await store.changes_since(inbox.id, before)).expunged == (2, 3)
    assert (await store.usage(account.id)).messages == 5

    empty = await store.copy(inbox.id, [77], archive.id)
    assert empty.source_uids == () and empty.dest_uids == ()
    with pytest.raises(NotFound):
        await store.copy(inbox.id, [1], 9999)


async def test_same_bytes_share_one_blob_until_last_reference(store, account, inbox):
    data = message(1)
    await store.append(inbox.id, data)
    await store.append(inbox.id, data)
    blob_id = hashlib.sha256(data).hexdigest()
    assert await stored_blobs(store) == {blob_id}
    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    assert await store.read_blob(blob_id) == data
    await store.store_flags(inbox.id, [2], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    assert await stored_blobs(store) == set()
    # Stored again after its release: written again.
    await store.append(inbox.id, data)
    assert await store.read_blob(blob_id) == data
    await store.remove_account(account.address)
    assert await stored_blobs(store) == set()


async def test_quota(store, account, inbox):
    data = message(1)
    await store.set_quota(account.address, 2 * len(data))
    await store.append(inbox.id, data)
    await store.append(inbox.id, message(2)[: len(data)])
    with pytest.raises(OverQuota):
        await store.append(inbox.id, message(3))
    with pytest.raises(OverQuota):
        await store.copy(inbox.id, [1], inbox.id)
    archive = await store.get_mailbox(account.id, "Archive")
    await store.move(inbox.id, [1], archive.id)  # a move inside the account is free
    usage = await store.usage(account.id)
    assert usage.messages == 2 and usage.bytes == 2 * len(data)
    assert len(await stored_blobs(store)) == 2  # the refused message left no file behind
    await store.set_quota(account.address, None)
    await store.append(inbox.id, message(3))


async def test_deliver_to_several_accounts(store, account, inbox):
    other = await store.create_account("carol@example.org", "h", None, quota=10)
    other_inbox = await store.get_mailbox(other.id, "INBOX")
    junk = await store.get_mailbox(account.id, "Junk")
    data = message(5)
    results = await store.deliver(
        [Delivery(inbox.id), Delivery(junk.id, frozenset({"\\Seen"}))], data
    )
    assert [r.uidvalidity for r in results] == [inbox.uidvalidity, junk.uidvalidity]
    assert [r.uid for r in results] == [1, 1]
    assert (await store.message_flags(junk.id))[0].flags == {"\\Seen"}
    assert len(await stored_blobs(store)) == 1
    # All or nothing: one target over quota refuses the delivery.
    with pytest.raises(OverQuota):
        await store.deliver([Delivery(inbox.id), Delivery(other_inbox.id)], message(6))
    assert await store.uids(inbox.id) == [1]
    with pytest.raises(Invalid):
        await store.deliver([], data)
    with pytest.raises(NotFound):
        await store.deliver([Delivery(inbox.id), Delivery(9999)], data)


async def test_quota_race_leaves_no_orphan_file(store, account, inbox):
    """Both appends pass the early check; the commit refuses one and its file is removed."""
    import asyncio

    first, second = message(1), message(2)
    await store.set_quota(account.address, len(first) + len(second) - 1)
    results = await asyncio.gather(
        store.append(inbox.id, first), store.append(inbox.id, second), return_exceptions=True
    )
    assert sum(isinstance(r, OverQuota) for r in results) == 1
    stored = await store.fetch(inbox.id, await store.uids(inbox.id))
    assert await stored_blobs(store) == {m.blob_id for m in stored}


async def test_flag_counters_and_modseqs_follow_every_store(store, inbox):
    """store_flags updates messages sharing a result together and keeps the unseen/deleted
    counters itself: after any sequence of STOREs the counters equal a count of the rows, the
    changed messages carry the new HIGHESTMODSEQ and the others keep theirs."""
    rng = random.Random(7)
    start = [["\\Seen"], [], ["\\Deleted", "Work"], ["\\Seen", "\\Deleted"], ["work", "$Later"]]
    for n in range(40):
        await store.append(inbox.id, message(n), flags=start[n % len(start)])
    choices = [["\\Seen"], ["\\Deleted"], ["\\Seen", "\\Flagged"], ["Work"], ["$LATER", "\\Seen"]]
    for _ in range(30):
        before = {m.uid: m for m in await store.message_flags(inbox.id)}
        mode = rng.choice(list(FlagMode))
        flags = rng.choice(choices + [[]])
        uids = rng.sample(range(1, 45), rng.randint(1, 30))
        since = rng.choice([None, (await store.status(inbox.id)).highestmodseq - 2])
        result = await store.store_flags(inbox.id, uids, mode, flags, unchangedsince=since)
        status = await store.status(inbox.id)
        after = {m.uid: m for m in await store.message_flags(inbox.id)}
        assert status.unseen == sum("\\Seen" not in m.flags for m in after.values())
        assert status.deleted == sum("\\Deleted" in m.flags for m in after.values())
        changed = {m.uid for m in result.updated}
        for uid, m in after.items():
            if uid in changed:
                assert m.modseq == status.highestmodseq
                assert m.flags != before[uid].flags
            else:
                assert m == before[uid]
        assert set(result.failed_unchangedsince) == {
            u for u in uids if u in before and since is not None and before[u].modseq > since
        }
        assert [(m.uid, m.flags, m.modseq) for m in result.updated] == [
            (u, after[u].flags, after[u].modseq) for u in sorted(changed)
        ]
