"""Kill a writing process at random moments: every acknowledged message must survive, byte
for byte, and the store must open cleanly with no leftovers (DESIGN principle 3)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from postroom.store.sqlite import SqliteStore
from tests.store.conftest import inline_blobs

ROUNDS = 5
WRITER = Path(__file__).with_name("crash_writer.py")


def run_and_kill(path: Path, seed: int, rng: random.Random) -> list[tuple[int, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 1.0))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    # Everything printed before the kill was acknowledged; the pipe still holds it.
    acked = []
    for line in proc.stdout.read().decode().splitlines():
        uid, sha = line.split()
        acked.append((int(uid), sha))
    proc.stdout.close()
    return acked


async def test_acknowledged_messages_survive_sigkill(tmp_path):
    path = tmp_path / "data"
    rng = random.Random()
    acked: dict[int, str] = {}
    for seed in range(ROUNDS):
        for uid, sha in run_and_kill(path, seed, rng):
            assert uid not in acked
            acked[uid] = sha
        store = SqliteStore(path)
        await store.open()
        try:
            account = await store.get_account("a@example.org")
            inbox = await store.get_mailbox(account.id, "INBOX")
            stored = {m.uid: m.blob_id for m in await store.fetch(inbox.id, sorted(acked))}
            for uid, sha in acked.items():
                assert stored.get(uid) == sha, f"acknowledged uid {uid} lost"
            for sha in set(acked.values()):
                assert hashlib.sha256(await store.read_blob(sha)).hexdigest() == sha
            # Recovery left exactly the referenced files (of messages not kept in the
            # database), and no tmp files.
            referenced = set()
            for mailbox in await store.list_mailboxes(account.id):
                every = await store.fetch(mailbox.id, await store.uids(mailbox.id))
                referenced |= {m.blob_id for m in every}
            inline = await inline_blobs(store)
            assert set(store._blobs.all_ids()) == referenced - inline
            assert list((path / "blobs" / "tmp").iterdir()) == []
        finally:
            await store.close()
    kept = set(acked.values())
    assert kept & inline, "no acknowledged message was kept in the database"
    assert kept - inline, "no acknowledged message was kept in a blob file"
