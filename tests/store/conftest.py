from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom.store.base import Account, Mailbox
from postroom.store.sqlite import SqliteStore


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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def account(store: SqliteStore) -> Account:
    await store.add_domain("example.org")
    return await store.create_account("bob@example.org", "argon2-hash", None)


@pytest.fixture
async def inbox(store: SqliteStore, account: Account) -> Mailbox:
    mailbox = await store.get_mailbox(account.id, "INBOX")
    assert mailbox is not None
    return mailbox
