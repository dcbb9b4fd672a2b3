"""Child process of test_crash: appends messages until killed, printing each acknowledged
one as ``uid sha256`` only after ``append`` returned, while other messages come and go.
About one message in five is larger than INLINE_MAX, so both ways of keeping bytes (in the
database, in a blob file) are killed in every phase."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import random
import sys
from pathlib import Path

from postroom.store.sqlite import INLINE_MAX, SqliteStore


async def main(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = SqliteStore(path)
    await store.open()
    if not await store.has_domain("example.org"):
        await store.add_domain("example.org")
    account = await store.get_account("a@example.org")
    if account is None:
        account = await store.create_account("a@example.org", "h", None)
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    print("ready", flush=True)
    previous: list[bytes] = []

    async def writer(worker: int) -> None:
        n = 0
        while True:
            n += 1
            if previous and rng.random() < 0.1:
                data = rng.choice(previous)  # the same bytes again: a shared blob
            else:
                size = INLINE_MAX if rng.random() < 0.2 else 20000
                body = os.urandom(rng.randrange(50, size)).hex()
                data = f"Subject: {seed}-{worker}-{n}\r\n\r\n{body}\r\n".encode()
                previous.append(data)
                del previous[:-20]
            result = await store.append(inbox.id, data)
            sys.stdout.write(f"{result.uid} {hashlib.sha256(data).hexdigest()}\n")
            sys.stdout.flush()

    trash = await store.get_mailbox(account.id, "Trash")
    assert trash is not None

    async def churn() -> None:
        """Messages stored and expunged again: kills also land between a commit that
        releases a blob and the unlink of its file."""
        for n in itertools.count():
            size = INLINE_MAX if n % 2 else 3000
            data = f"Subject: scratch\r\n\r\n{os.urandom(size).hex()}\r\n".encode()
            await store.append(trash.id, data, ["\\Deleted"])
            await store.expunge(trash.id)

    await asyncio.gather(churn(), *(writer(w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
