"""The Authenticator against a real SQLite store: logins, SASL exchanges, throttling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from postroom.auth.authenticator import Authenticator, AuthOutcome, Challenge
from postroom.auth.passwords import hash_password, scram_secrets
from postroom.auth.throttle import Throttle
from postroom.config import Auth
from postroom.store.sqlite import SqliteStore
from tests.auth.scram_client import ScramClient

PASSWORD = "correct horse battery staple"
USER = "alice@example.org"
IP = "192.0.2.1"
# Large enough that nothing here is delayed or locked unless a test asks for it.
RELAXED = Auth(failures_before_delay=100, lockout_failures=100)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def credentials() -> tuple[str, object]:
    return hash_password(PASSWORD), scram_secrets(PASSWORD)


@pytest.fixture
async def store(tmp_path, credentials) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "data")
    await store.open()
    try:
        await store.add_domain("example.org")
        await store.create_account(USER, *credentials)
        await store.create_account("noscram@example.org", credentials[0], None)
        yield store
    finally:
        await store.close()


@pytest.fixture
def auth(store) -> Authenticator:
    return Authenticator(store, RELAXED)


async def sasl(auth, mechanism, *responses, ip=IP) -> tuple[list[bytes], AuthOutcome]:
    """Run an exchange feeding ``responses``; returns (challenges, outcome)."""
    exchange = auth.sasl(mechanism, ip, True)
    challenges = []
    for response in responses:
        step = await exchange.step(response)
        if isinstance(step, AuthOutcome):
            return challenges, step
        challenges.append(step.data)
    raise AssertionError(f"no outcome after {responses!r}")


async def scram(auth, username, password, ip=IP) -> AuthOutcome:
    client = ScramClient(username, password)
    exchange = auth.sasl("SCRAM-SHA-256", ip, True)
    step = await exchange.step(client.first())
    if isinstance(step, AuthOutcome):
        return step
    step = await exchange.step(client.final(step.data))
    if isinstance(step, AuthOutcome):
        return step
    assert client.verify(step.data)  # the server proved it knows the secrets too
    return await exchange.step(b"")


def test_mechanisms_need_tls_unless_allowed(store) -> None:
    strict = Authenticator(store, Auth())
    assert strict.mechanisms(True) == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    assert strict.mechanisms(False) == []
    assert not strict.plaintext_allowed(False) and strict.plaintext_allowed(True)
    assert strict.sasl("PLAIN", IP, False) is None
    assert strict.sasl("plain", IP, True) is not None
    assert strict.sasl("CRAM-MD5", IP, True) is None
    relaxed = Authenticator(store, Auth(allow_plaintext=True))
    assert relaxed.mechanisms(False) == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]


async def test_login(auth) -> None:
    outcome = await auth.login("Alice@Example.ORG", PASSWORD, IP)
    assert outcome.ok and outcome.account.address == USER


async def test_wrong_password_and_unknown_user_look_alike(auth) -> None:
    wrong = await auth.login(USER, "guess", IP)
    unknown = await auth.login("nobody@example.org", PASSWORD, IP)
    assert wrong == unknown == AuthOutcome(None, False, "invalid credentials")
    too_long = await auth.login("x" * 1000 + "@example.org", PASSWORD, IP)
    assert too_long == wrong


async def test_plain(auth) -> None:
    _, outcome = await sasl(auth, "PLAIN", f"\0{USER}\0{PASSWORD}".encode())
    assert outcome.ok
    challenges, outcome = await sasl(auth, "PLAIN", None, f"{USER}\0{USER}\0{PASSWORD}".encode())
    assert challenges == [b""] and outcome.ok
    _, outcome = await sasl(auth, "PLAIN", f"\0{USER}\0nope".encode())
    assert outcome == AuthOutcome(None, False, "invalid credentials")


async def test_plain_refuses_impersonation(auth) -> None:
    _, outcome = await sasl(auth, "PLAIN", f"bob@example.org\0{USER}\0{PASSWORD}".encode())
    assert not outcome.ok and not outcome.temporary


async def test_login_mechanism(auth) -> None:
    challenges, outcome = await sasl(auth, "LOGIN", None, USER.encode(), PASSWORD.encode())
    assert challenges == [b"Username:", b"Password:"] and outcome.ok
    challenges, outcome = await sasl(auth, "LOGIN", USER.encode(), PASSWORD.encode())
    assert challenges == [b"Password:"] and outcome.ok


async def test_scram(auth) -> None:
    outcome = await scram(auth, "ALICE@example.org", PASSWORD)
    assert outcome.ok and outcome.account.address == USER
    assert await scram(auth, USER, "guess") == AuthOutcome(None, False, "invalid credentials")
    assert await scram(auth, "nobody@example.org", PASSWORD) == AuthOutcome(
        None, False, "invalid credentials"
    )


async def test_account_without_scram_secrets(auth) -> None:
    # Looks like an unknown user to SCRAM, while password mechanisms still work.
    assert not (await scram(auth, "noscram@example.org", PASSWORD)).ok
    assert (await auth.login("noscram@example.org", PASSWORD, IP)).ok


async def test_malformed_and_finished_exchanges_fail(auth) -> None:
    exchange = auth.sasl("SCRAM-SHA-256", IP, True)
    outcome = await exchange.step(b"garbage")
    assert isinstance(outcome, AuthOutcome) and not outcome.ok and not outcome.temporary
    assert exchange.done
    assert not (await exchange.step(b"n,,n=user,r=abc")).ok


async def test_cancel_is_not_a_failure(auth) -> None:
    exchange = auth.sasl("LOGIN", IP, True)
    assert await exchange.step(None) == Challenge(b"Username:")
    exchange.cancel()
    assert not (await exchange.step(b"x")).ok
    assert auth.throttle.tracked == (0, 0)


async def test_lock_per_address(store) -> None:
    clock = Clock()
    settings = Auth(failures_before_delay=1, max_delay=0.01, lockout_failures=3, lockout_seconds=60)
    auth = Authenticator(store, settings, Throttle(settings, clock=clock))
    for i in range(3):
        assert await auth.login(f"u{i}@example.org", "guess", IP) == AuthOutcome(
            None, False, "invalid credentials"
        )
    locked = await auth.login(USER, PASSWORD, IP)
    assert locked.temporary and not locked.ok
    # Every mechanism is refused at its first step from a locked address.
    for mechanism in ("PLAIN", "LOGIN", "SCRAM-SHA-256"):
        outcome = await auth.sasl(mechanism, IP, True).step(None)
        assert isinstance(outcome, AuthOutcome) and outcome.temporary
    assert (await auth.login(USER, PASSWORD, "192.0.2.2")).ok  # other addresses unaffected
    clock.now += 60
    assert (await auth.login(USER, PASSWORD, IP)).ok


async def test_lock_per_account_then_owner_gets_in(store) -> None:
    clock = Clock()
    settings = Auth(failures_before_delay=100, lockout_failures=3, lockout_seconds=60)
    auth = Authenticator(store, settings, Throttle(settings, clock=clock))
    for i in range(3):
        await auth.login(USER, "guess", f"198.51.100.{i}")
    owner = "203.0.113.7"
    assert (await auth.login(USER, PASSWORD, owner)).temporary
    assert (await scram(auth, USER, PASSWORD, ip=owner)).temporary
    _, outcome = await sasl(auth, "PLAIN", f"\0{USER}\0{PASSWORD}".encode(), ip=owner)
    assert outcome.temporary
    assert (await auth.login("noscram@example.org", PASSWORD, owner)).ok
    clock.now += 60
    assert (await scram(auth, USER, PASSWORD, ip=owner)).ok


async def test_malformed_sasl_counts_against_the_address(store) -> None:
    settings = Auth(failures_before_delay=100, lockout_failures=2)
    auth = Authenticator(store, settings)
    for _ in range(2):
        _, outcome = await sasl(auth, "PLAIN", b"not plain")
        assert not outcome.temporary
    _, outcome = await sasl(auth, "PLAIN", f"\0{USER}\0{PASSWORD}".encode())
    assert outcome.temporary


async def test_concurrent_logins(auth) -> None:
    outcomes = await asyncio.gather(
        *(auth.login(USER, PASSWORD if i % 2 else "guess", f"10.0.0.{i}") for i in range(8))
    )
    assert [o.ok for o in outcomes] == [i % 2 == 1 for i in range(8)]


async def test_failures_logged_without_passwords(auth, caplog) -> None:
    caplog.set_level(logging.INFO, logger="postroom")
    await auth.login(USER, "hunter2-secret", IP)
    await sasl(auth, "PLAIN", f"\0{USER}\0plain-secret".encode())
    await auth.login(USER, PASSWORD, IP)
    text = caplog.text
    assert "auth.failure" in text and "auth.success" in text and USER in text
    assert "hunter2-secret" not in text and "plain-secret" not in text and PASSWORD not in text


def test_verified_cache_hits_only_the_same_hash_and_password():
    from postroom.auth.authenticator import VerifiedCache

    now = [0.0]
    cache = VerifiedCache(60, clock=lambda: now[0])
    assert not cache.hit("h1", "pw")
    cache.add("h1", "pw")
    assert cache.hit("h1", "pw")
    assert not cache.hit("h1", "other")  # a guess is never answered from the cache
    assert not cache.hit("h2", "pw")  # a changed password hash misses
    now[0] = 61
    assert not cache.hit("h1", "pw")  # expired
    disabled = VerifiedCache(0)
    disabled.add("h1", "pw")
    assert not disabled.hit("h1", "pw")


def test_verified_cache_is_bounded():
    from postroom.auth.authenticator import VerifiedCache

    cache = VerifiedCache(60)
    for i in range(VerifiedCache.MAX_ENTRIES + 10):
        cache.add("h", str(i))
    assert len(cache._entries) == VerifiedCache.MAX_ENTRIES
    assert not cache.hit("h", "0") and cache.hit("h", str(VerifiedCache.MAX_ENTRIES + 9))


async def test_password_change_defeats_the_verified_cache(auth, store) -> None:
    assert (await auth.login(USER, PASSWORD, IP)).ok
    assert (await auth.login(USER, PASSWORD, IP)).ok  # answered from the cache
    await store.set_password(USER, hash_password("new password"), scram_secrets("new password"))
    assert not (await auth.login(USER, PASSWORD, IP)).ok
    assert (await auth.login(USER, "new password", IP)).ok
