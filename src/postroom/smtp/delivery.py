"""Local delivery of an accepted message: trace fields, then one durable commit.

Every local account named by the transaction's recipients gets one copy in its INBOX, however
many recipients, aliases or repeats lead to it.  All copies share one blob and one commit
(``Store.deliver``), so the message is delivered to every local recipient or to none: a 250
reply always means every copy is on disk, and an error reply means the client still owns the
message and will retry without creating duplicates.  Delivered-To is added when exactly one
account receives the message (several accounts share the same stored bytes).

Remote recipients (``Route.remote``) go to the outbound queue after the local copies are
committed, with their RFC 3461 parameters; the 250 waits for both.  An authenticated
submission gets its RFC 6409 §8 fix-ups (Date, Message-ID) before either, so every copy is
the same message.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from postroom import log
from postroom.outbound.queue import OutboundRecipient
from postroom.outbound.submit import submission_fixups
from postroom.smtp import trace
from postroom.smtp.policy import Route
from postroom.smtp.reply import LOCAL_ERROR, OVER_QUOTA, TOO_BIG, TOO_MANY_HOPS, Reply
from postroom.smtp.server import Transaction
from postroom.store.base import Account, Delivery, Invalid, OverQuota, Store, StoreError

if TYPE_CHECKING:
    from postroom.app import App

# RFC 5321 §6.3: a message that has crossed this many hops is looping (Postfix hopcount_limit).
MAX_HOPS = 50

_RECEIVED = re.compile(rb"(?:^|\n)Received[ \t]*:", re.IGNORECASE)


def hops(data: bytes) -> int:
    """Received fields in the header section."""
    end = data.find(b"\r\n\r\n")
    header = data if end < 0 else data[: end + 2]
    return len(_RECEIVED.findall(header))


def accounts(transaction: Transaction) -> list[Account]:
    """The distinct local accounts of the transaction, in recipient order."""
    found: dict[int, Account] = {}
    for recipient in transaction.recipients:
        assert isinstance(recipient.route, Route)
        for account in recipient.route.local:
            found.setdefault(account.id, account)
    return list(found.values())


def remote_recipients(transaction: Transaction) -> list[OutboundRecipient]:
    """Queue entries for the remote addresses of the transaction.  An address reached through
    an alias keeps the RCPT address as its original recipient (RFC 3461 §4.2 ORCPT)."""
    out = []
    for recipient in transaction.recipients:
        assert isinstance(recipient.route, Route)
        for address in recipient.route.remote:
            orcpt = recipient.params.orcpt
            if orcpt is None and address != str(recipient.address):
                orcpt = ("rfc822", str(recipient.address))
            out.append(OutboundRecipient(address, recipient.params.notify, orcpt))
    return out


async def deliver(
    store: Store,
    transaction: Transaction,
    data: bytes,
    info: trace.Trace,
    app: App | None = None,
) -> Reply:
    """Deliver and return the reply for the end of DATA / last BDAT.  ``app`` gives the
    outbound queue, needed when some recipients are remote."""
    if hops(data) >= MAX_HOPS:
        return TOO_MANY_HOPS
    if info.user is not None:
        data = submission_fixups(data, info.hostname)
    targets = accounts(transaction)
    remote = remote_recipients(transaction)
    received = trace.received(
        info, transaction.params.smtputf8, [r.address for r in transaction.recipients]
    )
    if targets:
        reply = await _deliver_locally(store, transaction, targets, received + data, info)
        if not reply.positive:
            return reply
    if remote:
        if app is None:
            return LOCAL_ERROR
        try:
            queue_id = await app.enqueue(
                str(transaction.sender or ""),
                remote,
                received + data,
                envid=transaction.params.envid,
                ret=transaction.params.ret,
                requiretls=transaction.params.requiretls,
                authenticated=info.user is not None,
            )
        except Exception as exc:  # noqa: BLE001 - any failure to queue is a temporary error
            log.event("queue.error", logging.ERROR, id=info.id, error=repr(exc))
            return LOCAL_ERROR
        log.event("queued", id=info.id, queue_id=queue_id, rcpts=len(remote))
    return Reply(250, "2.0.0", f"Ok: queued as {info.id}")


async def _deliver_locally(
    store: Store,
    transaction: Transaction,
    targets: list[Account],
    data: bytes,
    info: trace.Trace,
) -> Reply:
    try:
        deliveries = []
        for account in targets:
            inbox = await store.inbox_id(account.id)
            if inbox is None:
                log.event("delivery.error", logging.ERROR, user=account.address, error="no INBOX")
                return LOCAL_ERROR
            deliveries.append(Delivery(inbox))
        header = trace.return_path(transaction.sender)
        if len(targets) == 1:
            header += trace.delivered_to(targets[0].address)
        await store.deliver(deliveries, header + data)
    except OverQuota:
        return OVER_QUOTA
    except Invalid:  # the store's size bound, reached with the trace fields
        return TOO_BIG
    except (StoreError, OSError) as exc:
        log.event("delivery.error", logging.ERROR, id=info.id, error=repr(exc))
        return LOCAL_ERROR
    return Reply(250, "2.0.0", "Ok")
