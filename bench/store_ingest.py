"""Durable ingest rate of the SQLite store beside this disk's raw fsync rates, same run.

Every stored message is acknowledged only once its bytes and metadata are on disk, so a
store that fsyncs once per message can never beat the disk's fsync rate; group commit
(one WAL fsync per batch) is what lets it go past that ceiling as writers are added.  Two
ceilings are printed: the serial rate of appending a message to one file and fdatasyncing
it (what a commit costs at least: messages up to INLINE_MAX are kept in the database), and
of durably storing one small file (write, fsync, rename, fsync the directory: what a
message in a blob file costs).  The store runs on uvloop when installed, as ``postroom
serve`` does.

Also prints the read side on a large mailbox: the SELECT flag list (cold and cached) and
SEARCH UNSEEN.

    python bench/store_ingest.py [--messages 2000] [--writers 1,20,100] [--dir PATH] [--files]

``--files`` keeps every message in a blob file, as messages larger than INLINE_MAX are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from postroom.store import query
from postroom.store.sqlite import INLINE_MAX, SqliteStore

MESSAGE_SIZE = 4096


def append_rate(path: Path, seconds: float = 3.0) -> float:
    """Messages appended to one file and fdatasync'd one after the other, per second."""
    payload = os.urandom(MESSAGE_SIZE)
    count = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, payload)
            os.fdatasync(fd)
            count += 1
    finally:
        os.close(fd)
    return count / (time.perf_counter() - start)


def fsync_rate(root: Path, seconds: float = 3.0) -> float:
    """Small files made durable one after the other, per second."""
    root.mkdir()
    payload = os.urandom(MESSAGE_SIZE)
    count = 0
    start = time.perf_counter()
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while time.perf_counter() - start < seconds:
            tmp = root / f"tmp.{count}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, root / f"file.{count}")
            os.fsync(dir_fd)
            count += 1
    finally:
        os.close(dir_fd)
    return count / (time.perf_counter() - start)


# Bodies are prose-like text (words from a fixed vocabulary), as mail mostly is: the
# full-text index costs depend on it, and random bytes would be unrepresentatively costly.
_RNG = random.Random(2024)
_VOCABULARY = [
    "".join(_RNG.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(_RNG.randint(2, 11)))
    for _ in range(5000)
]


def make_message(n: int) -> bytes:
    head = (
        f"From: bench@example.org\r\nTo: user@example.org\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}.{os.getpid()}@example.org>\r\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
    ).encode()
    rng = random.Random(n)
    lines, line = [], ""
    size = len(head)
    while size < MESSAGE_SIZE:
        word = rng.choice(_VOCABULARY)
        if len(line) + len(word) + 1 > 72:
            lines.append(line)
            size += len(line) + 2
            line = ""
        line = f"{line} {word}" if line else word
    return (head + "\r\n".join(lines).encode())[:MESSAGE_SIZE]


async def ingest(root: Path, writers: int, total: int, inline_max: int) -> tuple[float, float]:
    """Messages per second and mean batch size with ``writers`` concurrent appenders."""
    store = SqliteStore(root, inline_max=inline_max)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("user@example.org", "x", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        messages = [make_message(n) for n in range(total)]
        batches_before = store._writer.batches
        next_index = iter(range(total))

        async def writer() -> None:
            for n in next_index:
                await store.append(inbox.id, messages[n])

        start = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.perf_counter() - start
        batches = store._writer.batches - batches_before
        assert (await store.status(inbox.id)).messages == total
        return total / elapsed, total / max(batches, 1)
    finally:
        await store.close()


async def footprint(root: Path) -> tuple[float, float]:
    """Database and blob file bytes per stored message, once the text index has caught
    up (messages of MESSAGE_SIZE are kept in the database)."""
    store = SqliteStore(root)
    await store.open()
    try:
        await store.text_index_settled()
        count = (await store.usage(1)).messages
    finally:
        await store.close()
    database = sum(f.stat().st_size for f in root.glob("postroom.db*"))
    blobs = sum(f.stat().st_size for f in (root / "blobs").rglob("*") if f.is_file())
    return database / count, blobs / count


async def read_side(root: Path, size: int) -> dict[str, float]:
    """Timings (ms) on one mailbox of ``size`` messages, 1% unseen."""
    store = SqliteStore(root)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("user@example.org", "x", None)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        await store.append(inbox.id, make_message(0), ["\\Seen"])
        rng = random.Random(1)

        # Rows are inserted directly (as one operation) so that building a large mailbox
        # takes seconds; they are shaped exactly like appended ones.
        def fill(conn, ctx):  # noqa: ANN001, ANN202
            blob = conn.execute(
                "SELECT blob FROM messages WHERE mailbox_id = ?", (inbox.id,)
            ).fetchone()[0]
            conn.executemany(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate,"
                " size, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (inbox.id, uid, uid, 0 if rng.random() < 0.01 else 1, None, 1.7e9, 4096, blob)
                    for uid in range(2, size + 1)
                ],
            )
            conn.execute(
                "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
                (size + 1, size + 1, inbox.id),
            )

        await store._write(fill)
        timings = {}
        start = time.perf_counter()
        flags = await store.message_flags(inbox.id)
        timings["message_flags (cold)"] = (time.perf_counter() - start) * 1000
        assert len(flags) == size
        await store.append(inbox.id, make_message(1))
        start = time.perf_counter()
        await store.message_flags(inbox.id)
        timings["message_flags (cached, 1 new message)"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        unseen = await store.search(inbox.id, query.Not(query.HasFlag("\\Seen")))
        timings[f"search UNSEEN ({len(unseen)} hits)"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        await store.status(inbox.id)
        timings["status"] = (time.perf_counter() - start) * 1000
        return timings
    finally:
        await store.close()


def run(coro):  # noqa: ANN001, ANN201
    """On uvloop when installed, as ``postroom serve`` runs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per writer count")
    parser.add_argument("--writers", default="1,20,100", help="concurrent writer counts")
    parser.add_argument("--mailbox-size", type=int, default=100_000)
    parser.add_argument("--dir", help="where to write (default: a temporary folder)")
    parser.add_argument("--files", action="store_true", help="every message in a blob file")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="postroom-bench-", dir=args.dir))
    try:
        print(f"reproduce: python bench/store_ingest.py {' '.join(sys.argv[1:])}".rstrip())
        print(f"data: {base} ({os.cpu_count()} CPUs), {MESSAGE_SIZE}-byte messages")
        append = append_rate(base / "append")
        print(f"raw durable append rate (write+fdatasync one file):          {append:8.0f} /s")
        files = fsync_rate(base / "raw")
        print(f"raw durable small-file rate (write+fsync+rename+fsync dir): {files:8.0f} /s")
        ceiling, raw = (files, "small-file") if args.files else (append, "append")
        inline_max = 0 if args.files else INLINE_MAX
        for writers in (int(w) for w in args.writers.split(",")):
            rate, batch = run(
                ingest(base / f"ingest-{writers}", writers, args.messages, inline_max)
            )
            print(
                f"store append{' (files)' if args.files else ''}, {writers:3d} writer(s):"
                f" {rate:8.0f} msg/s"
                f"  ratio to raw {raw} {rate / ceiling:5.2f}  mean batch {batch:5.1f} ops/commit"
            )
        database, blobs = run(footprint(base / f"ingest-{writers}"))
        print(f"footprint per message: database {database:.0f} B, blob files {blobs:.0f} B")
        for name, ms in run(read_side(base / "read", args.mailbox_size)).items():
            print(f"{args.mailbox_size} messages: {name:40s} {ms:8.1f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
