"""RETR through the batched read-ahead: every message comes back exact whatever the order,
size (inline in the database or in a file) or removals by other sessions; and the batched
store reads agree with the one-at-a-time ones they replace."""

from __future__ import annotations

import poplib

import pytest

from postroom.pop3 import readahead
from postroom.store.base import FlagMode, Store
from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop

BIG = 200 * 1024  # above the store's inline limit (128 KiB): kept in a file


def message(i: int, size: int = 0) -> bytes:
    """A distinct message with a dotted line and about ``size`` more octets in 64-octet
    lines (poplib refuses lines over 2048)."""
    body = b"".join(b"%063d\n" % n for n in range(size // 64))[:-1].replace(b"\n", b"\r\n")
    return b"Subject: m%d\r\n\r\n.dotted %d\r\n" % (i, i) + body + b"\r\n"


def wire(data: bytes) -> list[bytes]:
    """The lines poplib returns for a stored message (dot-unstuffed, no CRLF)."""
    return data.removesuffix(b"\r\n").split(b"\r\n")


def test_retr_in_order_out_of_order_and_top_between(drop: Drop):
    sizes = [0, 10, BIG, 3, readahead.BATCH_BYTES // 3] + [i * 100 for i in range(60)]
    messages = [message(i, size) for i, size in enumerate(sizes)]
    for data in messages:
        drop.put(data)
    pop = drop.login()
    order = list(range(1, len(messages) + 1))
    order = order[:40] + [3, 2, 65, 64, 1] + order[40:]
    for number in order:
        if number % 7 == 0:
            assert pop.top(number, 0)[1] == wire(messages[number - 1])[:2]
        assert pop.retr(number)[1] == wire(messages[number - 1])
    pop.quit()


def test_messages_removed_after_login_fail_alone(drop: Drop):
    messages = [message(i, BIG if i == 5 else i) for i in range(50)]
    uids = [drop.put(data) for data in messages]
    pop = drop.login()
    gone = [uids[1], uids[5], uids[39]]
    store = drop.srv.store
    drop.srv.call(store.store_flags(drop.inbox, gone, FlagMode.ADD, ["\\Deleted"]))
    assert drop.srv.call(store.expunge(drop.inbox, uids=gone)) == gone
    for number, (uid, data) in enumerate(zip(uids, messages, strict=True), 1):
        if uid in gone:
            with pytest.raises(poplib.error_proto, match="removed by another session"):
                pop.retr(number)
        else:
            assert pop.retr(number)[1] == wire(data)
    pop.quit()


def test_pipelined_retr_of_a_whole_maildrop(drop: Drop):
    messages = [message(i, i * 37) for i in range(150)]
    for data in messages:
        drop.put(data)
    raw = drop.raw()
    commands = b"".join(b"RETR %d\r\n" % n for n in range(1, 151))
    raw.send(f"USER {drop.address}\r\nPASS {PASSWORD}\r\n".encode() + commands + b"QUIT\r\n")
    assert raw.line().startswith(b"+OK")
    assert raw.line().startswith(b"+OK maildrop has 150")
    for data in messages:
        assert raw.line() == b"+OK %d octets\r\n" % len(data)
        lines = raw.multiline()
        assert lines[2] == b"..dotted" + lines[2][8:]  # dot-stuffed on the wire
        assert lines[:2] + [lines[2][1:]] + lines[3:] == wire(data)
    assert raw.line().startswith(b"+OK")
    raw.close()


async def test_batched_store_reads_match_single_reads(tmp_path):
    from postroom import config
    from postroom.store.sqlite import SqliteStore

    settings = config.from_dict({"data_dir": str(tmp_path)})
    store = SqliteStore(tmp_path, limits=settings.limits)
    await store.open()
    try:
        await store.add_domain("example.test")
        account = await store.create_account("a@example.test", "unused", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        for i in range(5):
            await store.append(inbox.id, message(i, BIG if i == 2 else i), ["\\Seen"] * (i % 2))
        rows = await store.message_sizes(inbox.id)
        assert rows == await Store.message_sizes(store, inbox.id)  # the default, via fetch
        blob_ids = [blob for _, _, blob, _ in rows]
        wanted = [blob_ids[3], "0" * 64, "not a blob id", blob_ids[2], blob_ids[3], blob_ids[0]]
        batched = await store.read_blobs(wanted)
        assert batched == await Store.read_blobs(store, wanted)
        assert batched[1] is None and batched[2] is None
        assert batched[3] == message(2, BIG)
        assert [size for _, size, _, _ in rows] == [
            len(message(i, BIG if i == 2 else i)) for i in range(5)
        ]
        assert [("\\Seen" in flags) for *_, flags in rows] == [False, True, False, True, False]
    finally:
        await store.close()
