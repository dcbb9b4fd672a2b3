"""MTA-STS (RFC 8461): does the recipient domain require verified TLS to listed MX hosts?

The policy is announced by a TXT record at ``_mta-sts.<domain>`` and served over HTTPS from
``https://mta-sts.<domain>/.well-known/mta-sts.txt``.  Policies are cached (in the queue
database, so a restart keeps them) until their max_age; the TXT id tells when to refetch.
The HTTPS port and the trust anchors are parameters so tests can serve a policy from loopback.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass

from postroom import log
from postroom.outbound.dns import DnsError, Resolver
from postroom.outbound.queue import CachedPolicy, Queue

MAX_POLICY = 64 * 1024  # RFC 8461 §3.3: senders may limit the policy body size (64 KiB)
MAX_HEADERS = 16 * 1024
FETCH_TIMEOUT = 30.0
MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: max_age at most one year
_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # RFC 8461 §3.1 sts-id


class PolicyError(ValueError):
    """The policy (or its TXT record) is malformed, or could not be fetched."""


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str  # "enforce", "testing" or "none"
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: exact match, or ``*.example.com`` matching exactly one more label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return pattern == host


def parse_txt(records: list[str]) -> str | None:
    """The policy id from the ``_mta-sts`` TXT records; None when MTA-STS is not announced.
    RFC 8461 §3.1: exactly one record starting with ``v=STSv1``."""
    candidates = [r for r in records if r.startswith("v=STSv1")]
    if len(candidates) != 1:
        return None
    fields: dict[str, str] = {}
    for part in candidates[0].split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            fields.setdefault(key.strip(), value.strip())
    policy_id = fields.get("id", "")
    return policy_id if _ID.fullmatch(policy_id) else None


def parse_policy(text: str) -> Policy:
    """RFC 8461 §3.2 key/value policy; unknown keys are ignored, required ones checked."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            values.setdefault(key.strip(), []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise PolicyError("policy version is not STSv1")
    mode = (values.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"policy mode {mode!r} is invalid")
    age = (values.get("max_age") or [""])[0]
    if not age.isdigit() or len(age) > 10:
        raise PolicyError("policy max_age is missing or invalid")
    mx = tuple(m.lower() for m in values.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyError("policy lists no mx")
    return Policy(mode, mx, min(int(age), MAX_AGE_LIMIT))


class HttpsFetcher:
    """GET the policy with verified TLS.  RFC 8461 §3.3: HTTP 200 only, redirects are not
    followed, the media type is text/plain."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        port: int = 443,
        context: ssl.SSLContext | None = None,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.resolver = resolver
        self.port = port
        self.context = context or ssl.create_default_context()
        self.timeout = timeout

    async def __call__(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(host)
        except (
            OSError,
            DnsError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            raise PolicyError(f"{host}: {type(exc).__name__}: {exc}") from None

    async def _fetch(self, host: str) -> str:
        addresses = await self.resolver.addresses(host)
        reader, writer = await asyncio.open_connection(
            addresses[0], self.port, ssl=self.context, server_hostname=host
        )
        try:
            # HTTP/1.0: the response is delimited by the connection close, never chunked.
            writer.write(
                f"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n"
                "User-Agent: postroom\r\nAccept: text/plain\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEADERS:
                raise PolicyError(f"{host}: response header too large")
            body = await reader.read(MAX_POLICY + 1)
        finally:
            writer.close()
        lines = head.decode("iso-8859-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            raise PolicyError(f"{host}: HTTP status {' '.join(status[1:]) or '?'}")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        if headers.get("content-type", "").split(";")[0].strip().lower() != "text/plain":
            raise PolicyError(f"{host}: policy is not text/plain")
        if len(body) > MAX_POLICY:
            raise PolicyError(f"{host}: policy larger than {MAX_POLICY} bytes")
        return body.decode("utf-8", "replace")


class MtaSts:
    """Policy lookup with the RFC 8461 §5.1 cache rules."""

    def __init__(self, resolver: Resolver, queue: Queue, fetcher: HttpsFetcher) -> None:
        self.resolver = resolver
        self.queue = queue
        self.fetch = fetcher

    async def policy(self, domain: str) -> Policy | None:
        """The policy in force for ``domain``, None when it has none (or it cannot be had:
        RFC 8461 §5 - without a valid policy, deliver as without MTA-STS)."""
        domain = domain.lower()
        now = time.time()
        cached = await self.queue.get_policy(domain)
        if cached is not None and cached.expires <= now:
            cached = None
        try:
            policy_id = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
        except DnsError:
            policy_id = None
        if policy_id is None or (cached is not None and cached.policy_id == policy_id):
            # RFC 8461 §5.1: a cached policy stays in force when the TXT record disappears.
            return parse_policy(cached.text) if cached is not None else None
        try:
            text = await self.fetch(domain)
            policy = parse_policy(text)
        except PolicyError as exc:
            log.event("mta-sts fetch failed", domain=domain, error=str(exc))
            return parse_policy(cached.text) if cached is not None else None
        await self.queue.put_policy(
            CachedPolicy(domain, policy_id, text, now, now + policy.max_age)
        )
        return policy
