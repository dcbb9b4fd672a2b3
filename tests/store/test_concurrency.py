"""Group commit under concurrency, several stores on one data folder, reopening."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import pytest

from postroom.store import query as q
from postroom.store.base import FlagMode, StoreError
from postroom.store.sqlite import SqliteStore
from tests.store.conftest import message, stored_blobs


async def test_concurrent_appends_get_distinct_ascending_uids(store, inbox):
    datas = [message(n) for n in range(100)]
    results = await asyncio.gather(*(store.append(inbox.id, d) for d in datas))
    uids = [r.uid for r in results]
    assert sorted(uids) == list(range(1, 101))
    stored = await store.fetch(inbox.id, uids)
    by_uid = {m.uid: m.blob_id for m in stored}
    for data, uid in zip(datas, uids, strict=True):
        assert by_uid[uid] == hashlib.sha256(data).hexdigest()
    assert (await store.status(inbox.id)).messages == 100
    # Group commit: far fewer transactions than operations (at least one batch of several).
    assert store._writer.batches < 100


async def test_a_failing_operation_does_not_abort_its_batch(store, account, inbox):
    archive = await store.get_mailbox(account.id, "Archive")
    await store.append(inbox.id, message(0))
    ops = [store.append(inbox.id, message(n)) for n in range(1, 20)]
    ops.append(store.rename_mailbox(account.id, "Archive", "INBOX"))  # AlreadyExists
    ops.append(store.copy(inbox.id, [1], archive.id))
    results = await asyncio.gather(*ops, return_exceptions=True)
    assert isinstance(results[19], StoreError)
    assert not any(isinstance(r, BaseException) for r in results[:19] + results[20:])
    assert len(await store.uids(inbox.id)) == 20


async def test_mixed_concurrent_writers_keep_counters_exact(store, account, inbox):
    await asyncio.gather(*(store.append(inbox.id, message(n)) for n in range(50)))
    archive = await store.get_mailbox(account.id, "Archive")
    await asyncio.gather(
        *(
            store.store_flags(inbox.id, [n], FlagMode.ADD, ["\\Deleted", "\\Seen"])
            for n in range(1, 26)
        ),
        *(store.append(inbox.id, message(n)) for n in range(50, 60)),
        store.copy(inbox.id, list(range(40, 50)), archive.id),
    )
    await store.expunge(inbox.id)
    inbox_status = await store.status(inbox.id)
    archive_status = await store.status(archive.id)
    assert inbox_status.messages == 35 and inbox_status.unseen == 35
    assert archive_status.messages == 10
    usage = await store.usage(account.id)
    assert usage.messages == 45
    assert usage.bytes == inbox_status.size + archive_status.size


async def test_two_stores_on_one_folder_see_each_other(tmp_path):
    """What the CLI does next to a running server."""
    first, second = SqliteStore(tmp_path / "d"), SqliteStore(tmp_path / "d")
    await first.open()
    await second.open()
    try:
        await first.add_domain("example.org")
        account = await second.create_account("a@example.org", "h", None)
        inbox = await first.get_mailbox(account.id, "INBOX")
        await asyncio.gather(
            *(first.append(inbox.id, message(n)) for n in range(20)),
            *(second.append(inbox.id, message(n)) for n in range(20, 40)),
        )
        assert await first.uids(inbox.id) == list(range(1, 41))
        assert await second.uids(inbox.id) == list(range(1, 41))
        assert (await second.usage(account.id)).messages == 40
    finally:
        await first.close()
        await second.close()


async def test_reopen_after_close(tmp_path):
    path = tmp_path / "d"
    store = SqliteStore(path)
    await store.open()
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    data = message(1)
    await store.append(inbox.id, data, ["\\Seen"])
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError):
        await store.uids(inbox.id)

    again = SqliteStore(path)
    await again.open()
    try:
        [msg] = await again.fetch(inbox.id, [1])
        assert msg.flags == {"\\Seen"}
        assert await again.read_blob(msg.blob_id) == data
        assert (await again.append(inbox.id, message(2))).uid == 2
        assert (await again.get_mailbox_by_id(inbox.id)).uidvalidity == inbox.uidvalidity
    finally:
        await again.close()


async def test_cancelled_appends_leave_no_orphan_files(tmp_path, inline_max):
    """A client that goes away mid-APPEND: the message is stored or not, never half."""
    store = SqliteStore(tmp_path / "d", inline_max=inline_max)
    await store.open()
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    tasks = [asyncio.create_task(store.append(inbox.id, message(n))) for n in range(50)]
    for _ in range(5):  # some past their early checks, writing their blob
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await store.close()  # waits for the deliveries already writing their blob
    await asyncio.gather(*tasks, return_exceptions=True)

    again = SqliteStore(tmp_path / "d", inline_max=inline_max)
    await again.open()
    try:
        stored = await again.fetch(inbox.id, await again.uids(inbox.id))
        assert await stored_blobs(again) == {m.blob_id for m in stored}
        for m in stored:
            assert hashlib.sha256(await again.read_blob(m.blob_id)).hexdigest() == m.blob_id
    finally:
        await again.close()


async def test_another_process_writes_while_open(store, inbox):
    """The CLI adds users while the server runs: the server sees them at once, and the
    server's own writes meanwhile are not disturbed."""
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from postroom.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    s = SqliteStore(Path(sys.argv[1]))\n"
        "    await s.open()\n"
        "    for n in range(5):\n"
        "        await s.create_account(f'cli{n}@example.org', 'h', None)\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(store.data_dir),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    appended = [await store.append(inbox.id, message(n)) for n in range(20)]
    assert await proc.wait() == 0
    assert [r.uid for r in appended] == list(range(1, 21))
    addresses = {a.address for a in await store.list_accounts()}
    assert {f"cli{n}@example.org" for n in range(5)} <= addresses
    cli = await store.get_account("cli0@example.org")
    assert [m.name for m in await store.list_mailboxes(cli.id)][0] == "Archive"


async def test_a_worker_store_commits_and_the_server_store_takes_over_the_rest(tmp_path):
    """An SMTP worker's store commits its deliveries itself and reports each batch; the
    server's store, told of them, announces them to its sessions and indexes their texts."""
    reported = []
    server = SqliteStore(tmp_path / "d")
    worker = SqliteStore(tmp_path / "d", report=reported.append)
    await server.open()
    await worker.open()
    try:
        await server.add_domain("example.org")
        account = await server.create_account("a@example.org", "h", None)
        inbox = await server.get_mailbox(account.id, "INBOX")
        with server.notifier.subscribe(account.id) as heard:
            results = await asyncio.gather(
                *(worker.append(inbox.id, message(n, body=f"needle{n}")) for n in range(10)),
                *(server.append(inbox.id, message(n)) for n in range(10, 20)),
            )
            assert sorted(r.uid for r in results) == list(range(1, 21))
            await asyncio.sleep(0)  # the server's own announcements reach this loop
            heard.drain()
            changes = [change for batch in reported for change in batch]
            assert len(changes) == 10
            server.committed_elsewhere(changes)
            await asyncio.sleep(0)
            assert heard.drain() == changes
        assert await server.text_index_settled(timeout=30)
        assert await server.search(inbox.id, q.Body("needle7")) == [results[7].uid]
    finally:
        await worker.close()
        await server.close()
