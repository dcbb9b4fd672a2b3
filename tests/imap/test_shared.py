"""Store reads shared by sessions (imap/shared.py) against a real SQLite store: one query
serves many sessions only when it covers what woke them, and \\Recent still goes to exactly
one session (RFC 3501 §2.3.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from postroom.imap import shared
from postroom.store.base import NotFound
from postroom.store.sqlite import SqliteStore


def _message(n: int) -> bytes:
    return b"From: a@example.org\r\nSubject: %d\r\nMessage-ID: <%d@x>\r\n\r\nbody\r\n" % (n, n)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def inbox(store):
    await store.add_domain("example.org")
    account = await store.create_account("bob@example.org", "argon2-hash", None)
    return await store.get_mailbox(account.id, "INBOX")


async def test_recent_goes_to_one_session(store, inbox):
    for n in range(3):
        last = (await store.append(inbox.id, _message(n))).uid
    results = await asyncio.gather(
        *(shared.claim_recent(store, inbox.id, inbox.uidvalidity, last) for _ in range(50))
    )
    assert sorted(map(tuple, results)) == [()] * 49 + [(1, 2, 3)]
    # later sessions know without asking; a newer message is claimed again
    assert await shared.claim_recent(store, inbox.id, inbox.uidvalidity, last) == []
    newer = (await store.append(inbox.id, _message(9))).uid
    assert await shared.claim_recent(store, inbox.id, inbox.uidvalidity, newer) == [newer]


async def test_changes_shared_only_when_they_cover_the_wakeup(store, inbox):
    since = (await store.status(inbox.id)).highestmodseq
    await store.append(inbox.id, _message(1))
    need = (await store.status(inbox.id)).highestmodseq
    results = await asyncio.gather(
        *(shared.changes_since(store, inbox.id, since, need) for _ in range(20))
    )
    assert all(r is results[0] for r in results)  # one query answered all
    assert len(results[0].changed) == 1
    # a caller told of a change the answer does not cover asks again
    later = await shared.changes_since(store, inbox.id, since, need + 1000)
    assert later.highestmodseq == need
    alone = await shared.changes_since(store, inbox.id, since, None)
    assert alone == results[0] and alone is not results[0]


async def test_cancelled_asker_does_not_fail_the_others(store, inbox):
    since = (await store.status(inbox.id)).highestmodseq
    await store.append(inbox.id, _message(1))
    need = (await store.status(inbox.id)).highestmodseq
    first = asyncio.ensure_future(shared.changes_since(store, inbox.id, since, need))
    await asyncio.sleep(0)  # the first asks the store
    others = [
        asyncio.ensure_future(shared.changes_since(store, inbox.id, since, need)) for _ in range(3)
    ]
    await asyncio.sleep(0)
    first.cancel()
    results = await asyncio.gather(*others)
    assert all(len(r.changed) == 1 for r in results)
    assert first.cancelled()


async def test_ask_answers_every_callback_from_one_query(store, inbox):
    since = (await store.status(inbox.id)).highestmodseq
    await store.append(inbox.id, _message(1))
    answers: list = []
    for _ in range(5):
        shared.ask(store, inbox.id, since, answers.append)
    missing: list = []
    shared.ask(store, inbox.id + 1000, since, missing.append)
    while len(answers) < 5 or not missing:
        await asyncio.sleep(0.01)
    assert all(a is answers[0] for a in answers) and len(answers[0].changed) == 1
    assert isinstance(missing[0], NotFound)  # errors are handed over, not raised


async def test_reserved_claim_given_up_is_claimed_by_the_next_session(store, inbox):
    last = (await store.append(inbox.id, _message(1))).uid
    assert shared.reserve_recent(store, inbox.id, inbox.uidvalidity, last)
    assert not shared.reserve_recent(store, inbox.id, inbox.uidvalidity, last)  # one claimer
    shared.release_recent(store, inbox.id, inbox.uidvalidity, last)  # it went away unclaimed
    assert await shared.claim_recent(store, inbox.id, inbox.uidvalidity, last) == [last]
