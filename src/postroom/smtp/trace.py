"""Trace header fields added at final delivery: Return-Path, Delivered-To, Received.

RFC 5321 §4.4 gives the Received grammar; RFC 3848 (and RFC 6531 §3.7.3 for SMTPUTF8) the
"with" protocol names.  Everything that came from the client (HELO name, addresses) is either
already validated by the core's grammar or reduced to a safe token here, and no value can
contain CR, LF or NUL, so a client cannot add header fields of its own.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import re
import time
from dataclasses import dataclass

from postroom.smtp.address import Address, is_domain

_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e]")  # no space, parentheses, backslash
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Trace:
    """What the session knows about the client, for the Received field."""

    helo: str | None
    esmtp: bool
    ip: str
    hostname: str
    tls: str | None  # "TLSv1.3 TLS_AES_256_GCM_SHA384"
    user: str | None  # authenticated account address
    id: str


@functools.lru_cache(maxsize=4096)
def ip_literal(ip: str) -> str:
    """RFC 5321 §4.1.3 address literal."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "[" + _UNSAFE.sub("?", ip)[:64] + "]"
    if addr.version == 6:
        mapped = addr.ipv4_mapped  # type: ignore[union-attr]
        return f"[{mapped}]" if mapped else f"[IPv6:{addr.compressed}]"
    return f"[{addr}]"


def protocol(esmtp: bool, utf8: bool, tls: bool, auth: bool) -> str:
    """RFC 3848 / RFC 6531 §3.7.3 "with" keyword: ESMTP + S (TLS) + A (authenticated)."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)


def received(trace: Trace, utf8: bool, recipients: list[Address]) -> bytes:
    """One folded Received field.  ``for`` names the recipient only when there is exactly
    one, so Bcc recipients are not revealed to each other (RFC 5321 §7.2)."""
    literal = ip_literal(trace.ip)
    helo = trace.helo or ""
    if helo.isascii() and is_domain(helo):
        lines = [f"Received: from {helo} ({literal})"]
    else:
        lines = [f"Received: from {literal} (helo={_UNSAFE.sub('?', helo)[:64] or 'none'})"]
    if trace.tls:
        version, _, cipher = trace.tls.partition(" ")
        lines.append(f"(using {_UNSAFE.sub('?', version)} with cipher {_UNSAFE.sub('?', cipher)})")
    if trace.user:
        lines.append(f"(authenticated as {_UNSAFE.sub('?', trace.user)})")
    with_ = protocol(trace.esmtp, utf8, trace.tls is not None, trace.user is not None)
    lines.append(f"by {_UNSAFE.sub('?', trace.hostname)} (postroom) with {with_} id {trace.id}")
    tail = f"; {_date_now()}"
    if len(recipients) == 1:
        lines.append(f"for <{_clean(str(recipients[0]))}>{tail}")
    else:
        lines[-1] += tail
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8")


@functools.lru_cache(maxsize=2)
def _date_of(second: int) -> str:
    return email.utils.formatdate(second, localtime=True)


def _date_now() -> str:
    """RFC 5322 date-time of this second (formatted once a second: each message needs it)."""
    return _date_of(int(time.time()))


def return_path(sender: Address | None) -> bytes:
    """RFC 5321 §4.4: the reverse-path, added at final delivery."""
    return f"Return-Path: <{_clean(str(sender)) if sender else ''}>\r\n".encode()


def delivered_to(address: str) -> bytes:
    return f"Delivered-To: {_clean(address)}\r\n".encode()
