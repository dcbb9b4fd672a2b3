"""DNS for delivery: MX (RFC 5321 §5.1, null MX RFC 7505), addresses, TXT.

Name servers come from ``[dns] nameservers`` ("ip" or "ip:port", "[v6]:port"), so tests and
split-horizon setups can point postroom at their own resolver; empty means the system's.
Answers are cached for their TTL.  Errors are sorted into permanent (the domain does not exist,
null MX) and temporary (timeouts, SERVFAIL), which is what the queue needs to decide between
bouncing and retrying.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from postroom.config import parse_hostport

LIFETIME = 20.0  # seconds for one lookup, all retries included


class DnsError(Exception):
    """A lookup failed; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool, status: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status  # RFC 3463 enhanced status code for the DSN


@dataclass(frozen=True, slots=True)
class MxHost:
    preference: int
    name: str  # without the trailing dot, lower-case


def nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"`` or ``"[::1]:5353"`` -> a name server."""
    try:
        return dns.nameserver.Do53Nameserver(str(ipaddress.ip_address(spec)), 53)
    except ValueError:
        host, port = parse_hostport(spec, "dns.nameservers")
        return dns.nameserver.Do53Nameserver(host, port)


class Resolver:
    def __init__(self, nameservers: list[str] | None = None, lifetime: float = LIFETIME) -> None:
        if nameservers:
            self._r = dns.asyncresolver.Resolver(configure=False)
            self._r.nameservers = [nameserver(ns) for ns in nameservers]
        else:
            self._r = dns.asyncresolver.Resolver()
        self._r.lifetime = lifetime
        self._r.cache = dns.resolver.LRUCache(4096)

    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """Records of one type; [] when the name exists without them (NODATA)."""
        try:
            answer = await self._r.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise DnsError(f"{name}: no such domain", permanent=True, status="5.1.2") from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsError(
                f"{name} {rdtype}: DNS lookup failed: {exc}", permanent=False, status="4.4.3"
            ) from None
        except dns.exception.DNSException as exc:
            raise DnsError(
                f"{name} {rdtype}: DNS error: {exc}", permanent=False, status="4.4.3"
            ) from None
        return list(answer)

    async def mx(self, domain: str) -> list[MxHost]:
        """The hosts to try for ``domain`` in order: MX preference, random among equals
        (RFC 5321 §5.1); the domain itself when it has no MX (implicit MX)."""
        records = await self._query(domain, "MX")
        hosts = [
            MxHost(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in records
        ]
        if not records:
            return [MxHost(0, domain.lower())]
        hosts = [h for h in hosts if h.name not in ("", ".")]
        # RFC 7505 §3: an MX with the empty exchange (".") and nothing else says "no mail here";
        # RFC 7505 §4.2 gives its status code.
        if not hosts:
            raise DnsError(
                f"{domain} does not accept mail (null MX)", permanent=True, status="5.1.10"
            )
        random.shuffle(hosts)
        hosts.sort(key=lambda h: h.preference)
        return hosts

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of a host (an IP literal is returned as is).  A host with
        neither is a temporary failure: DNS data may be fixed soon."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        found: list[str] = []
        errors: list[DnsError] = []
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.address for r in await self._query(host, rdtype)]
            except DnsError as exc:
                errors.append(exc)
        if not found:
            if errors and not all(e.permanent for e in errors):
                raise next(e for e in errors if not e.permanent)
            raise DnsError(f"{host}: no address", permanent=False, status="4.4.4")
        return found

    async def txt(self, name: str) -> list[str]:
        """TXT records of a name, each one's strings joined (RFC 7208 §3.3); [] when absent."""
        try:
            records = await self._query(name, "TXT")
        except DnsError as exc:
            if exc.permanent:
                return []
            raise
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]
