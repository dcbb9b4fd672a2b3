"""Who may send as whom, and where a recipient goes: relay, recipient and sender decisions.

Recipients in hosted domains resolve through aliases (bounded recursion with loop detection),
plus addressing (``user+tag@domain`` -> ``user@domain``) and the ``@domain`` catch-all, in that
order of precedence: exact alias, exact account, the same two for the address without its
``+tag``, then the catch-all.  An alias that lists its own source keeps a copy in that
account (the source is then looked up as an account only), as with Postfix virtual aliases.

Recipients outside the hosted domains -- asked for by an authenticated user, or reached
through an alias -- form ``Route.remote``: the outbound queue takes them at the end of DATA.
Only unauthenticated mail for other domains is refused (no open relay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postroom.smtp.address import Address
from postroom.smtp.reply import (
    AUTH_REQUIRED,
    LOOP,
    NOT_OWNER,
    OVER_QUOTA,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_OK,
    UNKNOWN_USER,
    Reply,
)
from postroom.store.base import Account, Store

MAX_ALIAS_DEPTH = 8  # nesting of aliases followed from one recipient
MAX_EXPANSION = 1000  # addresses visited while expanding one recipient (fan-out bound)
MAX_CACHED = 256  # recipient resolutions remembered by one session

NULL_SENDER_REFUSED = Reply(553, "5.7.1", "The null sender is accepted on the MX service only")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one accepted recipient's copies go."""

    local: tuple[Account, ...]  # accounts that get the message in their INBOX
    remote: tuple[str, ...] = ()  # addresses for the outbound queue


class _Limit(Exception):
    """Expansion deeper or wider than the bounds."""


@dataclass
class _Expansion:
    local: dict[int, Account] = field(default_factory=dict)
    remote: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


class Policy:
    def __init__(self, store: Store, hostname: str, service: str) -> None:
        self.store = store
        self.hostname = hostname.lower()
        self.mx = service == "smtp"
        # Per session (sessions are short): one lookup per domain and per recipient address.
        self._hosted: dict[str, bool] = {}
        self._resolved: dict[str, Route | Reply] = {}

    async def hosted(self, domain: str) -> bool:
        known = self._hosted.get(domain)
        if known is None:
            known = self._hosted[domain] = await self.store.has_domain(domain)
        return known

    # -- MAIL ----------------------------------------------------------------------------
    async def sender(self, sender: Address | None, account: Account | None) -> Reply:
        """Unauthenticated mail (MX only: submission requires AUTH before MAIL) may use any
        reverse-path, including <> for bounces; an authenticated user must own it
        (RFC 6409 §6.1 lets the MSA enforce this)."""
        if account is None:
            return SENDER_OK if self.mx else AUTH_REQUIRED
        if sender is None:
            return NULL_SENDER_REFUSED
        return SENDER_OK if await self.owns(account, sender) else NOT_OWNER

    async def owns(self, account: Account, sender: Address) -> bool:
        """The account's own address (with or without +tag), an alias that delivers to it,
        or an address of its domain routed to it by the catch-all."""
        me = account.address.lower()
        address = str(sender).lower()
        base = _without_tag(address)
        if me in (address, base):
            return True
        for candidate in dict.fromkeys((address, base)):
            alias = await self.store.get_alias(candidate)
            if alias is not None:
                return me in (t.lower() for t in alias.targets)
        if await self.store.get_account(address) is not None:
            return False
        catch_all = await self.store.get_alias("@" + sender.domain)
        return catch_all is not None and me in (t.lower() for t in catch_all.targets)

    # -- RCPT ----------------------------------------------------------------------------
    async def recipient(
        self, recipient: Address, account: Account | None, declared_size: int | None
    ) -> tuple[Reply, Route | None]:
        if not recipient.domain:  # <Postmaster> (RFC 5321 §4.5.1)
            domain = await self._postmaster_domain()
            if domain is None:
                return UNKNOWN_USER, None
            recipient = Address("postmaster", domain)
        if not await self.hosted(recipient.domain):
            if account is None:
                return RELAY_DENIED, None
            return RECIPIENT_OK, Route((), (str(recipient),))
        key = str(recipient).lower()
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = await self._resolve(key)
            if len(self._resolved) >= MAX_CACHED:
                self._resolved.clear()
            self._resolved[key] = resolved
        if isinstance(resolved, Reply):
            return resolved, None
        if await self._over_quota(resolved.local, declared_size or 0):
            return OVER_QUOTA, None
        return RECIPIENT_OK, resolved

    async def _resolve(self, address: str) -> Route | Reply:
        try:
            expansion = await self._expand(address)
        except _Limit:
            return LOOP
        if expansion is None:
            return UNKNOWN_USER
        route = Route(tuple(expansion.local.values()), tuple(expansion.remote))
        if not route.local and not route.remote:
            return LOOP  # aliases pointing only at each other
        return route

    async def _expand(self, address: str) -> _Expansion | None:
        exp = _Expansion()
        found = await self._visit(address, 0, exp)
        return exp if found else None

    async def _visit(self, address: str, depth: int, exp: _Expansion) -> bool:
        if len(exp.seen) >= MAX_EXPANSION or depth > MAX_ALIAS_DEPTH:
            raise _Limit
        if address in exp.seen:  # a loop or a repeat: the account only, no re-expansion
            account = await self.store.get_account(address)
            if account is not None:
                exp.local[account.id] = account
            return True
        exp.seen.add(address)
        domain = address.rpartition("@")[2]
        if not await self.hosted(domain):
            exp.remote.append(address)
            return True
        base = _without_tag(address)
        for candidate in dict.fromkeys((address, base)):
            alias = await self.store.get_alias(candidate)
            if alias is not None:
                for target in alias.targets:
                    await self._visit(target.lower(), depth + 1, exp)
                return True
            account = await self.store.get_account(candidate)
            if account is not None:
                exp.local[account.id] = account
                return True
        catch_all = await self.store.get_alias("@" + domain)
        if catch_all is None:
            return False
        for target in catch_all.targets:
            await self._visit(target.lower(), depth + 1, exp)
        return True

    async def _over_quota(self, accounts: tuple[Account, ...], size: int) -> bool:
        """Refuse at RCPT (452 4.2.2) when an account is already full or the declared SIZE
        would not fit, so the client keeps the message instead of a bounce later."""
        for account in accounts:
            if account.quota is not None:
                used = await self.store.usage(account.id)
                if used.bytes + size > account.quota or used.bytes >= account.quota:
                    return True
        return False

    async def _postmaster_domain(self) -> str | None:
        """The hosted domain of our hostname (or its nearest hosted parent), else the first
        hosted domain."""
        labels = self.hostname.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            if candidate and await self.hosted(candidate):
                return candidate
        domains = await self.store.list_domains()
        return domains[0] if domains else None


def _without_tag(address: str) -> str:
    """RFC 5233-style subaddress: ``user+tag@domain`` -> ``user@domain``."""
    local, _, domain = address.rpartition("@")
    base = local.split("+", 1)[0]
    return f"{base}@{domain}" if base else address
