"""Policy (recipients, aliases, sender ownership), trace fields and local delivery against a
real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postroom.smtp import delivery, trace
from postroom.smtp.address import Address
from postroom.smtp.params import MailParams, RcptParams
from postroom.smtp.policy import (
    MAX_ALIAS_DEPTH,
    MAX_EXPANSION,
    NULL_SENDER_REFUSED,
    Policy,
    Route,
)
from postroom.smtp.reply import (
    AUTH_REQUIRED,
    LOOP,
    NOT_OWNER,
    OVER_QUOTA,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_OK,
    TOO_MANY_HOPS,
    UNKNOWN_USER,
)
from postroom.smtp.server import Recipient, Transaction
from postroom.store.base import Account
from postroom.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    await s.add_domain("example.test")
    await s.add_domain("example.net")
    try:
        yield s
    finally:
        await s.close()


async def user(store: SqliteStore, address: str, quota: int | None = None) -> Account:
    return await store.create_account(address, "argon2-hash", None, quota)


def addr(text: str) -> Address:
    local, _, domain = text.rpartition("@")
    return Address(local, domain)


async def test_recipients_resolve_to_accounts(store):
    alice = await user(store, "alice@example.test")
    bob = await user(store, "bob@example.net")
    await store.add_alias("team@example.test", ["alice@example.test", "bob@example.net"])
    await store.add_alias("all@example.test", ["team@example.test", "alice+x@example.test"])
    policy = Policy(store, "mx.example.test", "smtp")
    reply, route = await policy.recipient(addr("all+tag@example.test"), None, None)
    assert reply == RECIPIENT_OK
    assert route == Route((alice, bob))  # alice once, though reached twice
    assert (await policy.recipient(addr("ALICE@Example.Test"), None, None))[1] == Route((alice,))
    assert (await policy.recipient(addr("carol@example.test"), None, None))[0] == UNKNOWN_USER


async def test_catch_all_does_not_capture_existing_accounts(store):
    alice = await user(store, "alice@example.test")
    bob = await user(store, "bob@example.test")
    await store.add_alias("@example.test", ["alice@example.test"])
    policy = Policy(store, "mx.example.test", "smtp")
    assert (await policy.recipient(addr("bob@example.test"), None, None))[1] == Route((bob,))
    assert (await policy.recipient(addr("zzz@example.test"), None, None))[1] == Route((alice,))


async def test_relay_and_remote_targets(store):
    alice = await user(store, "alice@example.test")
    await store.add_alias("fwd@example.test", ["alice@example.test", "x@elsewhere.example"])
    policy = Policy(store, "mx.example.test", "smtp")
    assert await policy.recipient(addr("x@elsewhere.example"), None, None) == (RELAY_DENIED, None)
    assert await policy.recipient(addr("x@elsewhere.example"), alice, None) == (
        RECIPIENT_OK,
        Route((), ("x@elsewhere.example",)),
    )
    assert await policy.recipient(addr("fwd@example.test"), None, None) == (
        RECIPIENT_OK,
        Route((alice,), ("x@elsewhere.example",)),
    )


async def test_alias_loops_depth_and_fan_out_are_bounded(store):
    await store.add_alias("a@example.test", ["b@example.test"])
    await store.add_alias("b@example.test", ["a@example.test"])
    chain = [f"c{i}@example.test" for i in range(MAX_ALIAS_DEPTH + 2)]
    for source, target in zip(chain, chain[1:], strict=False):
        await store.add_alias(source, [target])
    await user(store, chain[-1])
    await store.add_alias("wide@example.test", [f"w{i}@example.test" for i in range(MAX_EXPANSION)])
    policy = Policy(store, "mx.example.test", "smtp")
    assert await policy.recipient(addr("a@example.test"), None, None) == (LOOP, None)
    assert await policy.recipient(addr(chain[0]), None, None) == (LOOP, None)
    assert (await policy.recipient(addr(chain[2]), None, None))[0] == RECIPIENT_OK
    assert await policy.recipient(addr("wide@example.test"), None, None) == (LOOP, None)


async def test_quota_at_rcpt(store):
    await user(store, "small@example.test", quota=100)
    policy = Policy(store, "mx.example.test", "smtp")
    assert (await policy.recipient(addr("small@example.test"), None, 50))[0] == RECIPIENT_OK
    assert await policy.recipient(addr("small@example.test"), None, 101) == (OVER_QUOTA, None)


async def test_postmaster_goes_to_the_hostname_domain(store):
    pm = await user(store, "postmaster@example.net")
    policy = Policy(store, "mail.example.net", "smtp")
    assert (await policy.recipient(Address("postmaster", ""), None, None))[1] == Route((pm,))


async def test_sender_rules(store):
    alice = await user(store, "alice@example.test")
    await user(store, "bob@example.test")
    await store.add_alias("info@example.test", ["alice@example.test"])
    await store.add_alias("@example.net", ["alice@example.test"])
    mx = Policy(store, "mx.example.test", "smtp")
    sub = Policy(store, "mx.example.test", "submission")
    assert await mx.sender(None, None) == SENDER_OK
    assert await mx.sender(addr("anyone@anywhere.example"), None) == SENDER_OK
    assert await sub.sender(addr("anyone@anywhere.example"), None) == AUTH_REQUIRED
    for owned in (
        "alice@example.test",
        "alice+tag@example.test",
        "info@example.test",
        "x@example.net",
    ):
        assert await sub.sender(addr(owned), alice) == SENDER_OK, owned
    for foreign in ("bob@example.test", "nobody@example.test", "alice@elsewhere.example"):
        assert await sub.sender(addr(foreign), alice) == NOT_OWNER, foreign
    assert await sub.sender(None, alice) == NULL_SENDER_REFUSED


# -- trace and delivery -----------------------------------------------------------------------
INFO = trace.Trace(
    helo="client.example",
    esmtp=True,
    ip="2001:db8::1",
    hostname="mx.example.test",
    tls="TLSv1.3 TLS_AES_128_GCM_SHA256",
    user="alice@example.test",
    id="abc.1",
)


def test_received_field():
    field = trace.received(INFO, False, [addr("a@example.test"), addr("b@example.test")])
    lines = field.split(b"\r\n")
    assert lines[0] == b"Received: from client.example ([IPv6:2001:db8::1])"
    assert lines[1] == b"\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)"
    assert lines[2] == b"\t(authenticated as alice@example.test)"
    assert lines[3].startswith(b"\tby mx.example.test (postroom) with ESMTPSA id abc.1; ")
    assert b"for <" not in field and lines[4] == b""


def test_protocol_names():
    assert trace.protocol(False, False, True, True) == "SMTP"
    assert trace.protocol(True, False, False, False) == "ESMTP"
    assert trace.protocol(True, False, True, False) == "ESMTPS"
    assert trace.protocol(True, True, True, True) == "UTF8SMTPSA"
    assert trace.ip_literal("::ffff:192.0.2.1") == "[192.0.2.1]"


def transaction(sender: str | None, *routes: Route) -> Transaction:
    tx = Transaction(addr(sender) if sender else None, MailParams())
    for i, route in enumerate(routes):
        tx.recipients.append(Recipient(addr(f"r{i}@example.test"), RcptParams(), route))
    return tx


async def messages(store: SqliteStore, account: Account) -> list[bytes]:
    inbox = await store.get_mailbox(account.id, "INBOX")
    found = await store.fetch(inbox.id, await store.uids(inbox.id))
    return [await store.read_blob(m.blob_id) for m in found]


async def test_delivery_is_one_copy_per_account(store):
    alice = await user(store, "alice@example.test")
    bob = await user(store, "bob@example.test")
    tx = transaction("c@remote.example", Route((alice,)), Route((alice, bob)))
    reply = await delivery.deliver(store, tx, b"Subject: x\r\n\r\nbody\r\n", INFO)
    assert reply.code == 250 and reply.lines == ("Ok: queued as abc.1",)
    [a] = await messages(store, alice)
    [b] = await messages(store, bob)
    assert a == b and a.startswith(b"Return-Path: <c@remote.example>\r\nReceived: ")
    # an authenticated submission gets RFC 6409 §8 fix-ups at the end of its header
    assert b"\r\nSubject: x\r\nDate: " in a and b"\r\nMessage-ID: <" in a
    assert a.endswith(b"\r\n\r\nbody\r\n")


async def test_delivery_refusals(store):
    alice = await user(store, "alice@example.test", quota=10)
    tx = transaction("c@remote.example", Route((alice,)))
    looped = b"Received: x\r\n" * delivery.MAX_HOPS + b"\r\nbody\r\n"
    assert await delivery.deliver(store, tx, looped, INFO) == TOO_MANY_HOPS
    assert await delivery.deliver(store, tx, b"\r\n" + b"y" * 100, INFO) == OVER_QUOTA
    assert await messages(store, alice) == []


def test_hops_counts_only_the_header():
    assert delivery.hops(b"Received: a\r\nreceived : b\r\n\r\nReceived: body\r\n") == 2
