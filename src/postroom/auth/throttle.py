"""Failed-authentication throttling per client address and per account name.

One instance per server, shared by SMTP, IMAP and POP3, so an attacker cannot spread guesses
over protocols.  After ``failures_before_delay`` failures each failing reply is delayed
(1 s, 2 s, 4 s, ... up to ``max_delay``); after ``lockout_failures`` failures the address, and
the account name from any address, are locked for ``lockout_seconds``.

The owner cannot be locked out for good: a lock is fixed-length and, once it has expired, the
account's count starts again from zero, attempts refused by a lock do not count, and counts
fade after ``lockout_seconds`` without failures.  A success resets the succeeding address's
counts, not the account's: the owner's phone logging in every few minutes must not hand an
attacker a fresh budget.  Account names are tracked whether or not the account exists, so
a lock reveals nothing.  Memory is bounded: at most ``max_entries`` addresses and as many
names, the least recently failing evicted first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from postroom.config import Auth

DEFAULT_MAX_ENTRIES = 100_000
# An IPv6 client usually controls a whole /64 (RFC 6177), so it is counted as one address.
_IPV6_PREFIX = 64


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


def address_key(ip: str) -> str:
    """The counting key of a client address: IPv4 as is, IPv6 by its /64."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, _IPV6_PREFIX), strict=False))
    return str(addr)


class Throttle:
    """Counts failures and decides delays and locks; never sleeps itself (see Authenticator)."""

    def __init__(
        self,
        settings: Auth,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._max_entries = max_entries
        self._addresses: OrderedDict[str, _Record] = OrderedDict()
        self._accounts: OrderedDict[str, _Record] = OrderedDict()

    def locked(self, ip: str, username: str | None = None) -> bool:
        """True when the address, or the account name when given, is currently locked."""
        now = self._clock()
        if self._current(self._addresses, address_key(ip), now).locked_until > now:
            return True
        return (
            username is not None
            and self._current(self._accounts, username.lower(), now).locked_until > now
        )

    def failure(self, ip: str, username: str | None = None) -> float:
        """Record a failure; return the seconds the failing reply should be delayed."""
        now = self._clock()
        counts = [self._fail(self._addresses, address_key(ip), now)]
        if username is not None:
            counts.append(self._fail(self._accounts, username.lower(), now))
        return self.delay(max(counts))

    def success(self, ip: str) -> None:
        """Forget the address's failures (the account's count is kept, see module doc)."""
        self._addresses.pop(address_key(ip), None)

    def delay(self, failures: int) -> float:
        """Seconds of delay for the ``failures``-th failure: doubling past the threshold."""
        excess = failures - self._settings.failures_before_delay
        if excess <= 0:
            return 0.0
        return min(float(self._settings.max_delay), 2.0 ** min(excess - 1, 32))

    @property
    def tracked(self) -> tuple[int, int]:
        """(addresses, account names) currently tracked."""
        return len(self._addresses), len(self._accounts)

    def _current(self, table: OrderedDict[str, _Record], key: str, now: float) -> _Record:
        """The record for ``key`` with expired locks and faded counts cleared."""
        record = table.get(key)
        if record is None:
            return _Record()
        if record.locked_until:
            if record.locked_until <= now:
                del table[key]  # the lock has expired: start again from zero
                return _Record()
        elif now - record.last_failure >= self._settings.lockout_seconds:
            del table[key]
            return _Record()
        return record

    def _fail(self, table: OrderedDict[str, _Record], key: str, now: float) -> int:
        record = self._current(table, key, now)
        if record.locked_until > now:
            return record.failures  # refused by the lock: does not extend it
        record.failures += 1
        record.last_failure = now
        if record.failures >= self._settings.lockout_failures:
            record.locked_until = now + self._settings.lockout_seconds
        table[key] = record
        table.move_to_end(key)
        while len(table) > self._max_entries:
            table.popitem(last=False)
        return record.failures
