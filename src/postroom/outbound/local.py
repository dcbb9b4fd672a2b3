"""Delivery of queued mail whose recipient is hosted here: bounces to local senders.

A report for a local sender is queued like any message (so it survives a full disk or a quota
and is retried), and the worker hands it to the store: the account's INBOX, or the accounts an
alias (or the domain's catch-all) names.  Final delivery adds Return-Path (RFC 5321 §4.4).
"""

from __future__ import annotations

from postroom.outbound.queue import RcptState, RecipientRecord, RecipientResult
from postroom.store.base import Delivery, OverQuota, Store, StoreError


async def inboxes(store: Store, address: str) -> list[int]:
    """INBOX ids the address leads to: the account, else its alias, else the catch-all;
    alias targets that are not local accounts are left out."""
    address = address.lower()
    account = await store.get_account(address)
    if account is not None:
        targets = [address]
    else:
        domain = address.rpartition("@")[2]
        alias = await store.get_alias(address) or await store.get_alias("@" + domain)
        targets = list(alias.targets) if alias is not None else []
    found: list[int] = []
    for target in targets:
        acct = account if target == address and account else await store.get_account(target)
        if acct is None:
            continue
        inbox = await store.inbox_id(acct.id)
        if inbox is not None and inbox not in found:
            found.append(inbox)
    return found


async def deliver(
    store: Store, sender: str, recipients: list[RecipientRecord], data: bytes, hostname: str
) -> list[RecipientResult]:
    """Store the message for each recipient; one result per recipient."""
    stamped = f"Return-Path: <{sender}>\r\n".encode() + data
    results = []
    for r in recipients:
        try:
            boxes = await inboxes(store, r.address)
            if not boxes:
                results.append(
                    RecipientResult(r.id, RcptState.FAILED, "5.1.1", "no such local mailbox")
                )
                continue
            await store.deliver([Delivery(box) for box in boxes], stamped)
        except OverQuota:
            results.append(RecipientResult(r.id, RcptState.DEFERRED, "4.2.2", "mailbox over quota"))
        except StoreError as exc:
            results.append(
                RecipientResult(r.id, RcptState.DEFERRED, "4.3.0", f"local delivery failed: {exc}")
            )
        else:
            results.append(
                RecipientResult(
                    r.id,
                    RcptState.DELIVERED,
                    "2.0.0",
                    f"delivered to mailbox at {hostname}",
                    None,
                    notified=r.notify is None or "SUCCESS" not in r.notify,
                )
            )
    return results
