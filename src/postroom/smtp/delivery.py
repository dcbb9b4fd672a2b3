"""Local delivery of an accepted message: trace fields, then one durable commit.

Every local account named by the transaction's recipients gets one copy in its INBOX, however
many recipients, aliases or repeats lead to it.  All copies share one blob and one commit
(``Store.deliver``), so the message is delivered to every local recipient or to none: a 250
reply always means every copy is on disk, and an error reply means the client still owns the
message and will retry without creating duplicates.  Delivered-To is added when exactly one
account receives the message (several accounts share the same stored bytes).

Remote recipients (``Route.remote``) are the outbound queue's; policy refuses them until it
lands, so a transaction reaching this module only has local routes.
"""

from __future__ import annotations

import logging
import re

from postroom import log
from postroom.smtp import trace
from postroom.smtp.policy import Route
from postroom.smtp.reply import LOCAL_ERROR, OVER_QUOTA, TOO_BIG, TOO_MANY_HOPS, Reply
from postroom.smtp.server import Transaction
from postroom.store.base import Account, Delivery, Invalid, OverQuota, Store, StoreError

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


async def deliver(
    store: Store,
    transaction: Transaction,
    data: bytes,
    info: trace.Trace,
    inboxes: dict[int, int],
) -> Reply:
    """Deliver and return the reply for the end of DATA / last BDAT.  ``inboxes`` maps
    account ids to INBOX ids; the session keeps it so each INBOX is looked up once."""
    if hops(data) >= MAX_HOPS:
        return TOO_MANY_HOPS
    targets = accounts(transaction)
    try:
        deliveries = []
        for account in targets:
            if account.id not in inboxes:
                inbox = await store.get_mailbox(account.id, "INBOX")
                if inbox is None:
                    log.event(
                        "delivery.error", logging.ERROR, user=account.address, error="no INBOX"
                    )
                    return LOCAL_ERROR
                inboxes[account.id] = inbox.id
            deliveries.append(Delivery(inboxes[account.id]))
        header = trace.return_path(transaction.sender)
        if len(targets) == 1:
            header += trace.delivered_to(targets[0].address)
        header += trace.received(
            info, transaction.params.smtputf8, [r.address for r in transaction.recipients]
        )
        await store.deliver(deliveries, header + data)
    except OverQuota:
        return OVER_QUOTA
    except Invalid:  # the store's size bound, reached with the trace fields
        return TOO_BIG
    except (StoreError, OSError) as exc:
        log.event("delivery.error", logging.ERROR, id=info.id, error=repr(exc))
        return LOCAL_ERROR
    return Reply(250, "2.0.0", f"Ok: queued as {info.id}")
