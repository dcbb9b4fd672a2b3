"""The SQLite queue on its own: durability across reopen, claims, conditional results."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from postroom.outbound.queue import (
    CachedPolicy,
    Notified,
    OutboundRecipient,
    RcptState,
    RecipientResult,
)
from postroom.outbound.sqlite_queue import SCHEMA_VERSION, QueueError, SqliteQueue


@pytest.fixture
async def queue(tmp_path):
    q = SqliteQueue(tmp_path / "queue.sqlite")
    await q.open()
    try:
        yield q
    finally:
        await q.close()


async def test_enqueue_is_durable_across_reopen(tmp_path):
    path = tmp_path / "queue.sqlite"
    q = SqliteQueue(path)
    await q.open()
    queue_id = await q.enqueue(
        "a@example.test",
        [
            OutboundRecipient(
                "b@remote.test", frozenset({"SUCCESS", "FAILURE"}), ("rfc822", "B@x")
            ),
            OutboundRecipient("c@remote.test"),
        ],
        b"Subject: x\r\n\r\nbody\r\n",
        envid="ENV",
        ret="HDRS",
        requiretls=True,
        arrival=100.0,
    )
    await q.close()
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    q = SqliteQueue(path)
    await q.open()
    try:
        m = await q.get(queue_id)
        assert (m.sender, m.envid, m.ret, m.requiretls, m.arrival) == (
            "a@example.test",
            "ENV",
            "HDRS",
            True,
            100.0,
        )
        assert m.recipients[0].notify == frozenset({"SUCCESS", "FAILURE"})
        assert m.recipients[0].orcpt == ("rfc822", "B@x")
        assert m.recipients[1].notify is None and m.recipients[1].state is RcptState.PENDING
        assert await q.read_data(queue_id) == b"Subject: x\r\n\r\nbody\r\n"
    finally:
        await q.close()


async def test_claim_leases_and_release(queue):
    a = await queue.enqueue("s@x.test", [OutboundRecipient("r@y.test")], b"x", arrival=10.0)
    b = await queue.enqueue("s@x.test", [OutboundRecipient("r@y.test")], b"x", arrival=20.0)
    assert [m.id for m in await queue.claim(15.0, 10, 60.0)] == [a]  # b is not due yet
    assert [m.id for m in await queue.claim(30.0, 10, 60.0)] == [b]  # a is leased
    assert await queue.next_due() == 75.0  # a's lease (15+60) ends first
    await queue.release(a, 40.0, attempted_at=30.0)
    m = await queue.get(a)
    assert (m.attempts, m.next_attempt, m.last_attempt) == (1, 40.0, 30.0)
    assert [m.id for m in await queue.claim(41.0, 10, 60.0)] == [a]
    await queue.recover()
    assert {m.id for m in await queue.claim(200.0, 10, 60.0)} == {a, b}


async def test_final_states_are_not_overwritten(queue):
    qid = await queue.enqueue("s@x.test", [OutboundRecipient("r@y.test")], b"x", arrival=1.0)
    rid = (await queue.get(qid)).recipients[0].id
    assert await queue.fail_active(qid, "5.0.0", "returned by the administrator", 2.0) == 1
    await queue.record(qid, [RecipientResult(rid, RcptState.DELIVERED, "2.0.0", "250 ok")], 3.0)
    r = (await queue.get(qid)).recipients[0]
    assert (r.state, r.status, r.updated) == (RcptState.FAILED, "5.0.0", 2.0)


async def test_dsn_and_marks_commit_together(queue):
    qid = await queue.enqueue("s@x.test", [OutboundRecipient("r@y.test")], b"x", arrival=1.0)
    rid = (await queue.get(qid)).recipients[0].id
    dsn = await queue.enqueue(
        "",
        [OutboundRecipient("s@x.test")],
        b"report",
        arrival=2.0,
        notified=[Notified(rid, "final"), Notified(rid, "delay")],
    )
    r = (await queue.get(qid)).recipients[0]
    assert r.final_notified and r.delay_notified
    assert (await queue.get(dsn)).sender == ""


async def test_concurrent_enqueues_share_commits(queue):
    ids = await asyncio.gather(
        *(
            queue.enqueue("s@x.test", [OutboundRecipient(f"r{i}@y.test")], b"x" * i, arrival=1.0)
            for i in range(200)
        )
    )
    assert len(set(ids)) == 200
    assert len(await queue.list()) == 200
    assert await queue.retry(None, 5.0) == 200
    assert await queue.remove(ids[0]) and not await queue.remove(ids[0])


async def test_a_failing_operation_does_not_spoil_the_batch(queue):
    with pytest.raises(ValueError):
        await queue.enqueue("s@x.test", [], b"x", arrival=1.0)
    with pytest.raises(KeyError):
        await queue.read_data("missing")
    assert await queue.list() == []


async def test_policy_cache(queue):
    assert await queue.get_policy("remote.test") is None
    p = CachedPolicy("remote.test", "id1", "version: STSv1\n", 1.0, 2.0)
    await queue.put_policy(p)
    await queue.put_policy(p)
    assert await queue.get_policy("remote.test") == p


async def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "queue.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    q = SqliteQueue(path)
    with pytest.raises(QueueError, match="newer"):
        await q.open()
