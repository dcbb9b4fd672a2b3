from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom.store.base import Account, Mailbox
from postroom.store.sqlite import INLINE_MAX, SqliteStore


def message(
    n: int = 0, subject: str = "Hello", body: str = "Some body text.", **headers: str
) -> bytes:
    """A small RFC 5322 message; ``n`` makes its bytes (and blob) distinct."""
    fields = {
        "from": ("From", "Alice <alice@example.org>"),
        "to": ("To", "bob@example.org"),
        "subject": ("Subject", subject),
        "date": ("Date", "Mon, 01 Jan 2024 10:00:00 +0000"),
        "message-id": ("Message-ID", f"<{n}@example.org>"),
    }
    for key, value in headers.items():
        name = key.replace("_", "-")
        fields[name.lower()] = (name, value)
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.values())
    return (head + "\r\n" + body + "\r\n").encode("utf-8")


@pytest.fixture(params=["inline", "files"])
def inline_max(request: pytest.FixtureRequest) -> int:
    """Store tests run twice: messages kept in the database (what messages up to INLINE_MAX
    get) and in blob files (what larger ones get)."""
    return INLINE_MAX if request.param == "inline" else 0


@pytest.fixture
async def store(tmp_path: Path, inline_max: int) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data", inline_max=inline_max)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def inline_blobs(store: SqliteStore) -> set[str]:
    """The messages (sha256) kept in the database rather than in blob files."""
    return await store._read(
        lambda conn: {
            r[0] for r in conn.execute("SELECT sha256 FROM blobs JOIN blob_data ON blob = blobs.id")
        }
    )


async def stored_blobs(store: SqliteStore) -> set[str]:
    """Every message content the store keeps, as blob file or in the database (never both)."""
    inline = await inline_blobs(store)
    files = set(store._blobs.all_ids())
    assert not files & inline
    return files | inline


@pytest.fixture
async def account(store: SqliteStore) -> Account:
    await store.add_domain("example.org")
    return await store.create_account("bob@example.org", "argon2-hash", None)


@pytest.fixture
async def inbox(store: SqliteStore, account: Account) -> Mailbox:
    mailbox = await store.get_mailbox(account.id, "INBOX")
    assert mailbox is not None
    return mailbox
