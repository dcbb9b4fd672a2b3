"""The entry point SMTP calls for recipients that are not hosted here.

``enqueue`` completes a submitted message (RFC 6409 §8), signs it with DKIM, and commits it to
the outbound queue; the SMTP session answers 250 only after it returned.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from email.utils import formatdate, getaddresses
from typing import Any

from postroom.outbound.queue import OutboundRecipient


def header_field(data: bytes, name: str) -> str | None:
    """The unfolded value of the first top-level header field ``name`` (case-insensitive)."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[: end + 2]
    wanted = name.lower().encode()
    value: list[bytes] | None = None
    for line in head.split(b"\r\n"):
        if value is not None:
            if line[:1] in (b" ", b"\t"):
                value.append(line)
                continue
            break
        field, colon, rest = line.partition(b":")
        if colon and field.strip().lower() == wanted:
            value = [rest]
    if value is None:
        return None
    return b" ".join(v.strip() for v in value).decode("utf-8", "replace")


def add_fields(data: bytes, fields: Sequence[str]) -> bytes:
    """Append header fields at the end of the header section."""
    if not fields:
        return data
    block = "".join(f"{f}\r\n" for f in fields).encode()
    end = data.find(b"\r\n\r\n")
    if end < 0:  # a message that is all header: the fields go at its end
        return data + (b"" if data.endswith(b"\r\n") or not data else b"\r\n") + block
    return data[: end + 2] + block + data[end + 2 :]


def submission_fixups(data: bytes, hostname: str, now: float | None = None) -> bytes:
    """RFC 6409 §8.2 (Date) and §8.3 (Message-ID): add them when the client did not."""
    missing = []
    if header_field(data, "Date") is None:
        missing.append(
            f"Date: {formatdate(now if now is not None else time.time(), localtime=True)}"
        )
    if header_field(data, "Message-ID") is None:
        missing.append(f"Message-ID: <{secrets.token_hex(12)}@{hostname}>")
    return add_fields(data, missing)


def signing_domain(data: bytes, sender: str, has_key: Any) -> str | None:
    """The From domain when we hold its key (what DMARC aligns with, RFC 7489 §3.1), else the
    envelope sender's domain, else None."""
    candidates = []
    value = header_field(data, "From")
    if value:
        for _, addr in getaddresses([value]):
            if "@" in addr:
                candidates.append(addr.rpartition("@")[2].lower())
                break
    if "@" in sender:
        candidates.append(sender.rpartition("@")[2].lower())
    return next((d for d in candidates if has_key(d)), None)


async def enqueue(
    app: Any,
    sender: str,
    recipients: list[OutboundRecipient],
    data: bytes,
    *,
    envid: str | None = None,
    ret: str | None = None,
    requiretls: bool = False,
    authenticated: bool = False,
) -> str:
    """Queue ``data`` (CRLF lines, not dot-stuffed, trace fields already added) for remote
    ``recipients``; returns the queue id once the message is durable.

    ``app.outbound`` is the running Outbound.  For an authenticated submission the message gets
    a Date and a Message-ID when it lacks them, and a DKIM signature by the From (or envelope
    sender) domain's keys when postroom holds one; relayed mail is queued unchanged.
    ``recipients`` carry their RFC 3461 NOTIFY/ORCPT; ``envid``/``ret`` are MAIL's ENVID/RET;
    ``requiretls`` is RFC 8689's MAIL parameter.
    """
    outbound = app.outbound
    if authenticated:
        data = submission_fixups(data, app.settings.hostname)
        domain = signing_domain(data, sender, outbound.signer.has_key)
        if domain is not None:
            data = await asyncio.to_thread(outbound.signer.sign, data, domain)
    seen: set[str] = set()
    unique = []
    for r in recipients:
        local_part, _, domain = r.address.rpartition("@")
        key = f"{local_part}@{domain.lower()}"  # local parts are case-sensitive (RFC 5321 §2.4)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return await outbound.submit(sender, unique, data, envid=envid, ret=ret, requiretls=requiretls)
