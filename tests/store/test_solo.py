"""Writes committed on the caller's own thread when its event loop serves one session only
(``solo``, writer.py): only when nothing would be waited for, and as durably, in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from postroom.store import query as q
from postroom.store.sqlite import SqliteStore
from postroom.store.writelock import WriteLock
from tests.store.conftest import message


@pytest.fixture
async def solo(tmp_path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "d", solo=lambda: True)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def where(conn, ctx) -> int:  # noqa: ANN001
    """An operation that says which thread ran it."""
    conn.execute("INSERT INTO domains (name) VALUES (?)", (f"d{threading.get_ident()}.test",))
    return threading.get_ident()


async def test_a_lone_sessions_write_commits_before_submit_returns(solo, tmp_path):
    await solo.add_domain("example.org")
    account = await solo.create_account("a@example.org", "h", None)
    inbox = await solo.get_mailbox(account.id, "INBOX")
    future = solo._writer.submit(where, here=True)  # the writer thread has its connection
    assert future.done() and future.result() == threading.get_ident()
    result = await solo.append(inbox.id, message(1))
    await solo.close()
    again = SqliteStore(tmp_path / "d")
    await again.open()
    try:
        assert [m.uid for m in await again.fetch(inbox.id, [result.uid])] == [result.uid]
        assert f"d{threading.get_ident()}.test" in await again.list_domains()
    finally:
        await again.close()


async def test_with_other_sessions_the_writer_thread_commits(tmp_path):
    store = SqliteStore(tmp_path / "d", solo=lambda: False)
    await store.open()
    try:
        assert await store._write(where) != threading.get_ident()
    finally:
        await store.close()


async def test_a_write_lock_held_elsewhere_is_waited_for_on_the_writer_thread(solo, tmp_path):
    other = WriteLock(tmp_path / "d")
    other.open()
    try:
        with other:  # another process's writer, say
            future = solo._writer.submit(where, here=True)
            await asyncio.sleep(0.05)
            assert not future.done()  # the loop was not blocked: it is here, running
        assert await future != threading.get_ident()
    finally:
        other.close()


async def test_a_write_submitted_earlier_commits_first(solo):
    running, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first(conn, ctx) -> None:  # noqa: ANN001
        running.set()
        release.wait(10)
        order.append("first")

    def second(conn, ctx) -> None:  # noqa: ANN001
        order.append("second")

    def third(conn, ctx) -> None:  # noqa: ANN001
        order.append("third")

    busy = solo._writer.submit(first)
    assert await asyncio.to_thread(running.wait, 10)
    queued = solo._writer.submit(second)  # waits behind the first
    release.set()
    later = solo._writer.submit(third, here=True)
    await asyncio.gather(busy, queued, later)
    assert order == ["first", "second", "third"]


async def test_a_failing_write_here_is_rolled_back_alone(solo):
    def failing(conn, ctx) -> None:  # noqa: ANN001
        conn.execute("INSERT INTO domains (name) VALUES ('lost.test')")
        raise ValueError("refused")

    await solo.add_domain("before.test")  # the writer thread has opened its connection
    future = solo._writer.submit(failing, here=True)
    assert future.done()
    with pytest.raises(ValueError, match="refused"):
        await future
    await solo.add_domain("after.test")
    assert sorted(await solo.list_domains()) == ["after.test", "before.test"]


async def test_what_a_write_here_leaves_to_the_background_is_done(solo):
    await solo.add_domain("example.org")
    account = await solo.create_account("a@example.org", "h", None)
    inbox = await solo.get_mailbox(account.id, "INBOX")
    await asyncio.sleep(0.3)  # the writer thread has looked for work left and found none
    future = solo._writer.submit(lambda conn, ctx: None, here=True)
    assert future.done()  # so the append below commits here too
    result = await solo.append(inbox.id, message(1, body="needle in the haystack"))
    assert await solo.text_index_settled(timeout=10)
    assert await solo.search(inbox.id, q.Body("needle")) == [result.uid]
