"""Delivery status notifications: RFC 3464 inside an RFC 6522 multipart/report.

A report has three parts: words for a person, the machine-readable message/delivery-status
(one per-message block, one block per reported recipient), and the original message's header
section - or the whole message when the sender asked for it with RET=FULL (RFC 3461 §4.3).
When the original or an address is not ASCII, the RFC 6533 "global" types are used instead.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate

MAX_DIAGNOSTIC = 900  # characters kept of a remote reply: one header line stays under 998

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")
_SMTP_REPLY = re.compile(r"^[245]\d\d[ -]")


@dataclass(frozen=True, slots=True)
class ReportedRecipient:
    address: str
    action: str  # RFC 3464 §2.3.3: "failed", "delayed", "delivered", "relayed"
    status: str  # RFC 3463 code
    orcpt: tuple[str, str] | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None


_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}

_INTRO = {
    "failed": "Your message could not be delivered to one or more recipients.\n"
    "It is attached below. The reason for each recipient is:",
    "delayed": "Your message could not be delivered yet to one or more recipients.\n"
    "No action is required on your part: delivery will be retried until the time given\n"
    "below. The reason for the delay is:",
    "delivered": "Your message was delivered to the following recipients:",
    "relayed": "Your message was delivered to the following recipients:",
}


def _clean(text: str) -> str:
    return _UNSAFE.sub(" ", text).strip()[:MAX_DIAGNOSTIC]


def _date(t: float) -> str:
    return formatdate(t, localtime=True)


def _typed(address: str) -> str:
    """RFC 3464 §2.3.2 address-type; RFC 6533 §3 "utf-8" for internationalized ones."""
    return f"{'rfc822' if address.isascii() else 'utf-8'}; {_clean(address)}"


def header_section(data: bytes) -> bytes:
    """The original header section, CRLF-terminated, without the empty line."""
    end = data.find(b"\r\n\r\n")
    return data + b"\r\n" if end < 0 else data[: end + 2]


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    queue_id: str,
    envid: str | None,
    arrival: float,
    recipients: Sequence[ReportedRecipient],
    original: bytes,
    full: bool,
    now: float,
) -> bytes:
    """The complete report, ready to queue with the null reverse-path (RFC 3461 §6.2)."""
    if not recipients:
        raise ValueError("a delivery status notification reports at least one recipient")
    actions = {r.action for r in recipients}
    kind = next(a for a in ("failed", "delayed", "delivered", "relayed") if a in actions)
    headers_only = header_section(original)
    global_types = not (
        headers_only.isascii()
        and sender.isascii()
        and all(
            r.address.isascii() and (r.orcpt is None or r.orcpt[1].isascii()) for r in recipients
        )
    )
    boundary = "=_report_" + secrets.token_hex(12)

    human = [f"This is the mail system at {reporting_mta}.", "", *_INTRO[kind].split("\n"), ""]
    for r in recipients:
        reason = r.diagnostic or r.status
        human.append(f"<{_clean(r.address)}>: {r.action}: {_clean(reason)}")
        if r.remote_mta:
            human.append(f"    (reported by {r.remote_mta})")
        if r.will_retry_until:
            human.append(f"    (will retry until {_date(r.will_retry_until)})")
    human += ["", f"Queue id: {queue_id}", ""]
    human_text = "\r\n".join(human)

    # RFC 3464 §2.2: per-message fields.
    status = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envid is not None:
        status.append(f"Original-Envelope-Id: {_clean(envid)}")
    status.append(f"Arrival-Date: {_date(arrival)}")
    # RFC 3464 §2.3: per-recipient fields, each block after an empty line.
    for r in recipients:
        status.append("")
        if r.orcpt is not None:
            status.append(f"Original-Recipient: {r.orcpt[0]}; {_clean(r.orcpt[1])}")
        status.append(f"Final-Recipient: {_typed(r.address)}")
        status.append(f"Action: {r.action}")
        status.append(f"Status: {r.status}")
        if r.remote_mta:
            status.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            kind_of = "smtp" if r.remote_mta and _SMTP_REPLY.match(r.diagnostic) else "X-Postroom"
            status.append(f"Diagnostic-Code: {kind_of}; {_clean(r.diagnostic)}")
        if r.last_attempt is not None:
            status.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")
        if r.will_retry_until is not None:
            status.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")
    status_text = "\r\n".join(status) + "\r\n"

    if full:
        original_type = "message/global" if global_types else "message/rfc822"
        attached = original
        description = "Original message"
    else:
        original_type = "message/global-headers" if global_types else "text/rfc822-headers"
        attached = headers_only
        description = "Original message headers"
    status_type = "message/global-delivery-status" if global_types else "message/delivery-status"
    human_cte = "7bit" if human_text.isascii() else "8bit"
    attached_cte = "7bit" if attached.isascii() else "8bit"

    to = f"<{sender}>"
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: {to}",
        f"Subject: {_SUBJECTS[kind]}",
        f"Date: {_date(now)}",
        f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {human_cte}",
        "Content-Description: Notification",
        "",
        human_text,
        f"--{boundary}",
        f"Content-Type: {status_type}",
        "Content-Description: Delivery report",
        "",
        status_text,
    ]
    out = "\r\n".join(head).encode("utf-8")
    out += (
        f"--{boundary}\r\nContent-Type: {original_type}\r\n"
        f"Content-Transfer-Encoding: {attached_cte}\r\n"
        f"Content-Description: {description}\r\n\r\n"
    ).encode()
    out += attached
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out
