"""Domains, accounts, credentials and aliases."""

from __future__ import annotations

import pytest

from postroom.store.base import (
    DEFAULT_MAILBOXES,
    Alias,
    AlreadyExists,
    Invalid,
    NotFound,
    ScramSecrets,
)

SCRAM = ScramSecrets(b"salt", 4096, b"s" * 32, b"k" * 32)


async def test_domains(store):
    assert await store.list_domains() == []
    await store.add_domain("Example.ORG")
    await store.add_domain("b.example")
    assert await store.list_domains() == ["b.example", "example.org"]
    assert await store.has_domain("EXAMPLE.org")
    assert not await store.has_domain("other.example")
    with pytest.raises(AlreadyExists):
        await store.add_domain("example.org")
    with pytest.raises(Invalid):
        await store.add_domain("bad@domain")
    await store.remove_domain("b.example")
    assert await store.list_domains() == ["example.org"]
    with pytest.raises(NotFound):
        await store.remove_domain("b.example")


async def test_remove_domain_refused_while_used(store):
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    with pytest.raises(Invalid):
        await store.remove_domain("example.org")
    await store.remove_account(account.address)
    await store.add_alias("@example.org", ["x@elsewhere.example"])
    with pytest.raises(Invalid):
        await store.remove_domain("example.org")
    await store.remove_alias("@example.org")
    await store.remove_domain("example.org")


async def test_create_account(store):
    with pytest.raises(Invalid):
        await store.create_account("a@example.org", "h", None)  # domain not hosted
    await store.add_domain("example.org")
    account = await store.create_account("Alice@Example.org", "hash", SCRAM, quota=1000)
    assert account.address == "alice@example.org"
    assert account.quota == 1000
    with pytest.raises(AlreadyExists):
        await store.create_account("ALICE@example.org", "h", None)
    with pytest.raises(Invalid):
        await store.create_account("no-at-sign", "h", None)
    with pytest.raises(Invalid):
        await store.create_account("b@example.org", "h", None, quota=-1)
    mailboxes = await store.list_mailboxes(account.id)
    assert {(m.name, m.special_use) for m in mailboxes} == set(DEFAULT_MAILBOXES)
    assert all(m.subscribed for m in mailboxes)
    assert len({m.uidvalidity for m in mailboxes}) == len(mailboxes)
    assert await store.get_account("ALICE@EXAMPLE.ORG") == account
    assert await store.get_account_by_id(account.id) == account
    assert await store.get_account("nobody@example.org") is None
    assert await store.get_account_by_id(999) is None


async def test_credentials_and_password(store):
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "first", SCRAM)
    creds = await store.get_credentials("A@example.org")
    assert creds is not None
    assert creds.account == account
    assert creds.password_hash == "first"
    assert creds.scram_sha256 == SCRAM
    await store.set_password("a@example.org", "second", None)
    creds = await store.get_credentials("a@example.org")
    assert creds is not None and creds.password_hash == "second" and creds.scram_sha256 is None
    assert await store.get_credentials("b@example.org") is None
    with pytest.raises(NotFound):
        await store.set_password("b@example.org", "x", None)


async def test_quota_and_listing(store):
    await store.add_domain("example.org")
    await store.add_domain("other.example")
    await store.create_account("b@example.org", "h", None)
    await store.create_account("a@example.org", "h", None)
    await store.create_account("c@other.example", "h", None)
    await store.set_quota("a@example.org", 5000)
    assert (await store.get_account("a@example.org")).quota == 5000
    await store.set_quota("a@example.org", None)
    assert (await store.get_account("a@example.org")).quota is None
    with pytest.raises(NotFound):
        await store.set_quota("zz@example.org", 1)
    assert [a.address for a in await store.list_accounts()] == [
        "a@example.org",
        "b@example.org",
        "c@other.example",
    ]
    assert [a.address for a in await store.list_accounts("Example.org")] == [
        "a@example.org",
        "b@example.org",
    ]


async def test_remove_account(store):
    await store.add_domain("example.org")
    account = await store.create_account("a@example.org", "h", None)
    await store.remove_account("A@example.org")
    assert await store.get_account("a@example.org") is None
    assert await store.list_mailboxes(account.id) == []
    with pytest.raises(NotFound):
        await store.remove_account("a@example.org")
    with pytest.raises(NotFound):
        await store.usage(account.id)


async def test_aliases(store):
    await store.add_domain("example.org")
    with pytest.raises(Invalid):
        await store.add_alias("x@unhosted.example", ["a@example.org"])
    with pytest.raises(Invalid):
        await store.add_alias("x@example.org", [])
    await store.add_alias("Sales@example.org", ["a@example.org", "B@Remote.example"])
    await store.add_alias("sales@example.org", ["a@example.org", "c@example.org"])
    await store.add_alias("@example.org", ["catchall@example.org"])
    assert await store.get_alias("SALES@example.org") == Alias(
        "sales@example.org", ("a@example.org", "b@remote.example", "c@example.org")
    )
    assert await store.get_alias("@example.org") == Alias("@example.org", ("catchall@example.org",))
    assert await store.get_alias("nobody@example.org") is None
    assert [a.source for a in await store.list_aliases()] == ["@example.org", "sales@example.org"]
    assert await store.list_aliases("other.example") == []
    await store.remove_alias("sales@example.org", ["a@example.org"])
    assert (await store.get_alias("sales@example.org")).targets == (
        "b@remote.example",
        "c@example.org",
    )
    with pytest.raises(NotFound):
        await store.remove_alias("sales@example.org", ["zz@example.org"])
    await store.remove_alias("sales@example.org")
    assert await store.get_alias("sales@example.org") is None
    with pytest.raises(NotFound):
        await store.remove_alias("sales@example.org")
