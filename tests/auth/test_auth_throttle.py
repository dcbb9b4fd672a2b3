"""Failed-authentication throttling with an injected clock (no real waiting)."""

from __future__ import annotations

import pytest

from postroom.auth.throttle import Throttle, address_key
from postroom.config import Auth

SETTINGS = Auth(failures_before_delay=3, max_delay=15.0, lockout_failures=10, lockout_seconds=300)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> Throttle:
    return Throttle(SETTINGS, clock=clock)


def test_delay_grows_then_caps(throttle: Throttle) -> None:
    delays = [throttle.failure("192.0.2.1") for _ in range(9)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 15, 15]


def test_delay_counts_the_account_across_addresses(throttle: Throttle) -> None:
    delays = [throttle.failure(f"192.0.2.{i}", "Victim@example.org") for i in range(5)]
    assert delays == [0, 0, 0, 1, 2]


def test_address_lock(throttle: Throttle, clock: Clock) -> None:
    for i in range(10):
        assert not throttle.locked("192.0.2.1")
        throttle.failure("192.0.2.1", f"user{i}@example.org")
    assert throttle.locked("192.0.2.1")
    assert throttle.locked("192.0.2.1", "anyone@example.org")
    assert not throttle.locked("192.0.2.2", "user0@example.org")  # accounts saw one failure each
    clock.now += 299
    assert throttle.locked("192.0.2.1")
    clock.now += 1
    assert not throttle.locked("192.0.2.1")
    assert throttle.failure("192.0.2.1") == 0  # counting starts again after the lock


def test_account_lock_from_any_address(throttle: Throttle, clock: Clock) -> None:
    for i in range(10):
        throttle.failure(f"198.51.100.{i}", "victim@example.org")
    assert throttle.locked("203.0.113.7", "VICTIM@example.org")
    assert not throttle.locked("203.0.113.7", "other@example.org")
    assert not throttle.locked("198.51.100.3")  # no single address reached the limit


def test_owner_gets_in_from_another_address_after_expiry(throttle: Throttle, clock: Clock) -> None:
    attacker, owner, victim = "198.51.100.9", "203.0.113.7", "victim@example.org"
    for _ in range(10):
        throttle.failure(attacker, victim)
    assert throttle.locked(owner, victim)
    # The attacker keeps trying; refused attempts neither count nor extend the lock.
    for _ in range(50):
        clock.now += 5
        if throttle.locked(attacker, victim):
            continue
        throttle.failure(attacker, victim)
    clock.now = 1000.0 + 300
    assert not throttle.locked(owner, victim)
    throttle.success(owner)
    # After the lock the account starts from zero: a single new failure does not re-lock it.
    throttle.failure("198.51.100.10", victim)
    assert not throttle.locked(owner, victim)


def test_success_resets_the_address_not_the_account(throttle: Throttle) -> None:
    for _ in range(9):
        throttle.failure("192.0.2.1", "victim@example.org")
    throttle.success("192.0.2.1")
    assert throttle.failure("192.0.2.1") == 0
    # The account still remembers: the tenth failure locks it.
    throttle.failure("192.0.2.99", "victim@example.org")
    assert throttle.locked("192.0.2.50", "victim@example.org")


def test_counts_fade_without_failures(throttle: Throttle, clock: Clock) -> None:
    for _ in range(9):
        throttle.failure("192.0.2.1", "u@example.org")
    clock.now += 300
    throttle.failure("192.0.2.1", "u@example.org")
    assert not throttle.locked("192.0.2.1", "u@example.org")
    assert throttle.failure("192.0.2.1") == 0


def test_ipv6_counted_per_64(throttle: Throttle) -> None:
    for i in range(10):
        throttle.failure(f"2001:db8:1:2::{i:x}")
    assert throttle.locked("2001:db8:1:2:ffff::1")
    assert not throttle.locked("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("not an address") == "not an address"


def test_memory_is_bounded(clock: Clock) -> None:
    throttle = Throttle(SETTINGS, clock=clock, max_entries=100)
    for _ in range(10):
        throttle.failure("192.0.2.1", "first@example.org")
    for i in range(1000):
        clock.now += 0.001
        throttle.failure(f"10.0.{i // 256}.{i % 256}", f"spray{i}@example.org")
    assert throttle.tracked == (100, 100)
    # The oldest entries were evicted first, the newest kept.
    assert not throttle.locked("192.0.2.1", "first@example.org")
    for _ in range(9):
        throttle.failure("10.0.3.231")
    assert throttle.locked("10.0.3.231")
