"""The one entry point protocols use to authenticate: password logins and SASL exchanges.

Drives the sans-IO mechanisms of ``sasl`` with the store, runs argon2 off the event loop,
applies the shared ``Throttle`` and logs every failure (never a password).  An unknown user
costs the same argon2 verification as a wrong password, and both read "invalid credentials",
so neither timing nor replies reveal which accounts exist.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from postroom import log
from postroom.auth.passwords import hash_password, verify_password
from postroom.auth.sasl import (
    MECHANISMS,
    Authenticated,
    Challenge,
    Failed,
    Login,
    Mechanism,
    NeedSecrets,
    Plain,
    ScramSha256,
    Step,
    VerifyPassword,
)
from postroom.auth.throttle import Throttle
from postroom.config import Auth
from postroom.store.base import Account, Credentials, Store, StoreError

__all__ = ["AuthOutcome", "Authenticator", "Challenge", "SaslExchange"]

# RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets, so no address is longer.
MAX_USERNAME = 254

INVALID = "invalid credentials"
LOCKED = "too many authentication failures, try again later"
UNAVAILABLE = "account store unavailable"


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """The end of an authentication.  ``account`` set means success; otherwise ``temporary``
    says whether to answer with a temporary error (throttled, locked, store down) or a plain
    authentication failure.  ``reason`` is short, safe to log and to show to the client."""

    account: Account | None
    temporary: bool = False
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.account is not None


def account_key(username: str) -> str | None:
    """The lower-cased name to look up and to count failures against; None for a name no
    account can have (empty or too long), which is then neither looked up nor tracked."""
    key = username.lower()
    if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_USERNAME:
        return None
    return key


@functools.cache
def _dummy_hash() -> str:
    """A real argon2id hash to verify against when the user does not exist."""
    return hash_password(os.urandom(16).hex())


def _check(password_hash: str | None, password: str) -> bool:
    """Runs in a worker thread: argon2 verification, against a dummy hash for unknown users."""
    matches = verify_password(password_hash or _dummy_hash(), password)
    return matches and password_hash is not None


class Authenticator:
    """Authentication for every protocol of one server (one instance, one Throttle).

    ``fake_key`` seeds the salts SCRAM shows for unknown users; pass a persistent secret so
    they stay the same across restarts like real salts do (random per process by default).
    """

    def __init__(
        self,
        store: Store,
        settings: Auth,
        throttle: Throttle | None = None,
        *,
        fake_key: bytes | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.throttle = throttle if throttle is not None else Throttle(settings)
        self._fake_key = fake_key if fake_key is not None else os.urandom(32)
        # argon2 takes 64 MiB and a core per verification: run at most one per core.
        self._hash_slots = asyncio.Semaphore(os.cpu_count() or 1)
        self._verified = VerifiedCache(settings.cache_ttl)

    def plaintext_allowed(self, secure: bool) -> bool:
        """Whether a password may cross this connection (RFC 8314 §3: only over TLS by
        default; ``auth.allow_plaintext`` opens it on cleartext connections too)."""
        return secure or self.settings.allow_plaintext

    def mechanisms(self, secure: bool) -> list[str]:
        """SASL mechanisms to advertise on this connection."""
        return list(MECHANISMS) if self.plaintext_allowed(secure) else []

    def sasl(self, mechanism: str, ip: str, secure: bool) -> SaslExchange | None:
        """Start an exchange, or None for an unknown mechanism or one refused here."""
        name = mechanism.upper()
        if name not in self.mechanisms(secure):
            return None
        mech: Mechanism
        if name == "PLAIN":
            mech = Plain()
        elif name == "LOGIN":
            mech = Login()
        else:
            mech = ScramSha256(self._fake_key)
        return SaslExchange(self, mech, ip)

    async def login(self, username: str, password: str, ip: str) -> AuthOutcome:
        """A username/password login (IMAP LOGIN, POP3 USER/PASS)."""
        return await self._password(username, password, ip, "LOGIN-COMMAND")

    # -- shared by login() and the SASL exchanges ------------------------------------------
    async def _password(self, username: str, password: str, ip: str, how: str) -> AuthOutcome:
        key = account_key(username)
        if self.throttle.locked(ip, key):
            return self._locked(ip, key, how)
        try:
            credentials = await self._credentials(key)
        except (StoreError, OSError) as exc:
            return self._unavailable(ip, key, how, exc)
        password_hash = credentials.password_hash if credentials else None
        matches = password_hash is not None and self._verified.hit(password_hash, password)
        if not matches:
            async with self._hash_slots:
                matches = await asyncio.to_thread(_check, password_hash, password)
            if matches and password_hash is not None:
                self._verified.add(password_hash, password)
        if matches and credentials is not None:
            return self._succeeded(credentials.account, ip, how)
        return await self._failed(ip, key, how, INVALID)

    async def _credentials(self, key: str | None) -> Credentials | None:
        return None if key is None else await self.store.get_credentials(key)

    def _succeeded(self, account: Account, ip: str, how: str) -> AuthOutcome:
        self.throttle.success(ip)
        log.event("auth.success", ip=ip, user=account.address, mechanism=how)
        return AuthOutcome(account)

    async def _failed(self, ip: str, key: str | None, how: str, reason: str) -> AuthOutcome:
        delay = self.throttle.failure(ip, key)
        log.event(
            "auth.failure",
            logging.WARNING,
            ip=ip,
            user=key,
            mechanism=how,
            reason=reason,
            delay=delay or None,
        )
        if delay:
            await asyncio.sleep(delay)
        return AuthOutcome(None, False, reason)

    def _locked(self, ip: str, key: str | None, how: str) -> AuthOutcome:
        log.event("auth.locked", logging.WARNING, ip=ip, user=key, mechanism=how)
        return AuthOutcome(None, True, LOCKED)

    def _unavailable(self, ip: str, key: str | None, how: str, exc: Exception) -> AuthOutcome:
        log.event("auth.error", logging.ERROR, ip=ip, user=key, mechanism=how, error=repr(exc))
        return AuthOutcome(None, True, UNAVAILABLE)


class SaslExchange:
    """One SASL authentication in progress (RFC 4422 §3).

    ``await step(response)`` with the decoded client response (None: no initial response)
    returns a ``Challenge`` to send, or the final ``AuthOutcome``.  After the outcome, or
    ``cancel()``, every further step fails.
    """

    def __init__(self, auth: Authenticator, mechanism: Mechanism, ip: str) -> None:
        self._auth = auth
        self._mechanism = mechanism
        self._ip = ip
        self._account: Account | None = None
        self._outcome: AuthOutcome | None = None
        self._started = False

    @property
    def mechanism(self) -> str:
        return self._mechanism.name

    @property
    def done(self) -> bool:
        return self._outcome is not None

    def cancel(self) -> None:
        """The client answered "*" (RFC 4422 §3.5): abandon the exchange, not a failure."""
        if self._outcome is None:
            self._outcome = AuthOutcome(None, False, "authentication cancelled")

    async def step(self, response: bytes | None) -> Challenge | AuthOutcome:
        if self._outcome is not None:
            return AuthOutcome(None, False, "authentication exchange is over")
        auth, how = self._auth, self._mechanism.name
        if not self._started and auth.throttle.locked(self._ip):
            return self._finish(auth._locked(self._ip, None, how))
        self._started = True
        step: Step = self._mechanism.step(response)
        if isinstance(step, NeedSecrets):
            key = account_key(step.username)
            if auth.throttle.locked(self._ip, key):
                return self._finish(auth._locked(self._ip, key, how))
            try:
                credentials = await auth._credentials(key)
            except (StoreError, OSError) as exc:
                return self._finish(auth._unavailable(self._ip, key, how, exc))
            secrets = credentials.scram_sha256 if credentials else None
            if credentials is not None and secrets is not None:
                self._account = credentials.account
            step = self._mechanism.secrets(secrets)
        if isinstance(step, Challenge):
            return step
        if isinstance(step, VerifyPassword):
            return self._finish(await auth._password(step.username, step.password, self._ip, how))
        if isinstance(step, Authenticated) and self._account is not None:
            return self._finish(auth._succeeded(self._account, self._ip, how))
        reason = step.reason if isinstance(step, Failed) else INVALID
        username = step.username if isinstance(step, Failed | Authenticated) else None
        key = account_key(username) if username else None
        return self._finish(await auth._failed(self._ip, key, how, reason))

    def _finish(self, outcome: AuthOutcome) -> AuthOutcome:
        self._outcome = outcome
        return outcome


class VerifiedCache:
    """Recently verified (hash, password) pairs, so a client that logs in again and again
    (phones reconnecting, mbsync per channel) does not pay argon2 each time — Dovecot's
    auth_cache.  Keyed by an HMAC under a per-process key, never the password; a password
    change changes the stored hash and so misses.  Wrong passwords are never cached, so a
    guess always costs a full verification.  Bounded in size and age."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._key = os.urandom(32)
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def _digest(self, password_hash: str, password: str) -> bytes:
        material = f"{password_hash}\0{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def hit(self, password_hash: str, password: str) -> bool:
        if self.ttl <= 0:
            return False
        digest = self._digest(password_hash, password)
        expires = self._entries.get(digest)
        if expires is None:
            return False
        if expires < self._clock():
            del self._entries[digest]
            return False
        return True

    def add(self, password_hash: str, password: str) -> None:
        if self.ttl <= 0:
            return
        self._entries[self._digest(password_hash, password)] = self._clock() + self.ttl
        while len(self._entries) > self.MAX_ENTRIES:
            self._entries.popitem(last=False)
