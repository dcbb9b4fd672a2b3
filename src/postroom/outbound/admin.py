"""Command line for the outbound side: ``postroom queue``, ``postroom dkim``, ``postroom dns``.

``add_cli(subparsers)`` adds the commands to the main parser; ``HANDLERS[command]`` runs one
with ``(store, settings, args)``.  They work while ``postroom serve`` runs: the queue database
is shared safely, and the server's worker picks up retries and bounces within seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable

from postroom.config import Settings
from postroom.outbound import dkim, records
from postroom.outbound.bounce import header_section
from postroom.outbound.queue import QueuedMessage
from postroom.outbound.sqlite_queue import SqliteQueue
from postroom.outbound.worker import POLL, queue_path
from postroom.store.base import Store


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    queue = subparsers.add_parser("queue", help="the outbound mail queue").add_subparsers(
        dest="action", required=True
    )
    queue.add_parser("list", help="queued messages with each recipient's state")
    queue.add_parser("show", help="one message in detail").add_argument("id")
    retry = queue.add_parser("retry", help="try again now")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?")
    which.add_argument("--all", action="store_true", help="every queued message")
    queue.add_parser("delete", help="drop a message without notice").add_argument("id")
    queue.add_parser(
        "bounce", help="give up on a message: the sender gets a failure report"
    ).add_argument("id")

    keys = subparsers.add_parser("dkim", help="DKIM signing keys").add_subparsers(
        dest="action", required=True
    )
    gen = keys.add_parser("generate", help="make a signing key and print its DNS record")
    gen.add_argument("domain")
    gen.add_argument("--selector", help="DKIM selector (default: year, month and r or e)")
    gen.add_argument("--algorithm", choices=dkim.ALGORITHMS, default="rsa")
    keys.add_parser("list", help="keys and their DNS records").add_argument("domain", nargs="?")
    act = keys.add_parser("activate", help="sign with this key (after publishing it)")
    act.add_argument("domain")
    act.add_argument("selector")

    subparsers.add_parser("dns", help="print the DNS records a domain needs").add_argument("domain")


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _summary(m: QueuedMessage) -> list[str]:
    lines = [
        f"{m.id}  {_when(m.arrival)}  {m.size:>9}  <{m.sender}>  attempts={m.attempts}"
        f"  next={_when(m.next_attempt) if m.active else '-'}"
    ]
    for r in m.recipients:
        error = f"  {r.status or ''} {r.diagnostic}" if r.diagnostic else ""
        lines.append(f"    {r.address}  {r.state.value}{error}")
    return lines


async def queue_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    queue = SqliteQueue(queue_path(settings.data_path))
    await queue.open()
    try:
        return await _queue_action(queue, args)
    finally:
        await queue.close()


async def _queue_action(queue: SqliteQueue, args: argparse.Namespace) -> int:
    now = time.time()
    if args.action == "list":
        messages = await queue.list()
        for m in messages:
            print("\n".join(_summary(m)))
        print(f"{len(messages)} message{'s' if len(messages) != 1 else ''} queued")
        return 0
    if args.action == "retry" and args.all:
        count = await queue.retry(None, now)
        print(f"{count} message{'s' if count != 1 else ''} will be retried within {POLL:g}s")
        return 0
    m = await queue.get(args.id)
    if m is None:
        print(f"postroom: no queued message {args.id}", file=sys.stderr)
        return 1
    if args.action == "show":
        print("\n".join(_summary(m)))
        print(f"envid: {m.envid or '-'}  ret: {m.ret or '-'}  requiretls: {m.requiretls}")
        print(f"last attempt: {_when(m.last_attempt)}")
        for r in m.recipients:
            print(
                f"  {r.address}: state={r.state.value} status={r.status or '-'}"
                f" remote={r.remote_mta or '-'} notify={','.join(sorted(r.notify or [])) or '-'}"
                f" orcpt={';'.join(r.orcpt) if r.orcpt else '-'} updated={_when(r.updated)}"
            )
            if r.diagnostic:
                print(f"    {r.diagnostic}")
        print()
        print(header_section(await queue.read_data(m.id)).decode("utf-8", "replace"), end="")
    elif args.action == "retry":
        await queue.retry(m.id, now)
        print(f"{m.id} will be retried within {POLL:g}s")
    elif args.action == "delete":
        await queue.remove(m.id)
        print(f"{m.id} deleted")
    else:
        changed = await queue.fail_active(m.id, "5.0.0", "returned by the administrator", now)
        print(f"{m.id}: {changed} recipient{'s' if changed != 1 else ''} bounced;"
              " the running server sends the report")  # fmt: skip
    return 0


async def dkim_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.action == "generate":
            key = dkim.generate(settings.data_path, args.domain, args.selector, args.algorithm)
            print(f"key {key.selector} ({key.algorithm}) for {key.domain}"
                  f"{' is active' if key.active else ' made; publish it, then dkim activate'}")  # fmt: skip
            print(f"{key.dns_name}.\tIN\tTXT\t{records.txt(key.dns_value())}")
        elif args.action == "activate":
            key = dkim.activate(settings.data_path, args.domain, args.selector)
            print(f"{key.domain} now signs with {key.selector} ({key.algorithm})")
        else:
            for key in dkim.list_keys(settings.data_path, args.domain):
                print(f"{key.domain}\t{key.selector}\t{key.algorithm}"
                      f"\t{'active' if key.active else 'inactive'}")  # fmt: skip
                print(f"  {key.dns_name}.\tIN\tTXT\t{records.txt(key.dns_value())}")
    except dkim.DkimError as exc:
        print(f"postroom: {exc}", file=sys.stderr)
        return 2
    return 0


async def dns_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = records.render(args.domain, settings.hostname, settings.data_path)
    except dkim.DkimError as exc:
        print(f"postroom: {exc}", file=sys.stderr)
        return 2
    if not await store.has_domain(dkim.domain_name(args.domain)):
        print(f"; warning: {args.domain} is not hosted here (postroom domain add it)")
    print(text, end="")
    return 0


HANDLERS: dict[str, Callable[[Store, Settings, argparse.Namespace], Awaitable[int]]] = {
    "queue": queue_cmd,
    "dkim": dkim_cmd,
    "dns": dns_cmd,
}
