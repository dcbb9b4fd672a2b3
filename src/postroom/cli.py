"""Command line: ``postroom [-c FILE] serve | domain | user | alias | queue | dkim | dns | version``.

Administration commands open the same store as the server (SQLite allows several processes),
so they work while ``postroom serve`` runs and take effect at once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from postroom import __version__, config, log
from postroom.config import ConfigError, Settings
from postroom.outbound import admin as outbound_admin
from postroom.outbound import dkim
from postroom.store import open_store
from postroom.store.base import Store, StoreError


class UsageError(Exception):
    """A bad command-line request: reported as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="postroom", description="An all-in-one mail server.")
    p.add_argument("-c", "--config", help="TOML config file (default: $POSTROOM_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("serve", help="run the mail server")
    sub.add_parser("version", help="print the version")

    domain = sub.add_parser("domain", help="hosted domains").add_subparsers(
        dest="action", required=True
    )
    for action in ("add", "remove"):
        domain.add_parser(action).add_argument("name")
    domain.add_parser("list")

    user = sub.add_parser("user", help="accounts").add_subparsers(dest="action", required=True)
    for action in ("add", "passwd"):
        cmd = user.add_parser(action)
        cmd.add_argument("address")
        cmd.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        if action == "add":
            cmd.add_argument("--quota", type=_size, help="quota, e.g. 500M or 2G")
    user.add_parser("remove").add_argument("address")
    user.add_parser("list").add_argument("domain", nargs="?")
    quota = user.add_parser("quota", help="set or clear (none) an account's quota")
    quota.add_argument("address")
    quota.add_argument("size", type=_size_or_none)

    alias = sub.add_parser("alias", help="aliases; a source @domain is a catch-all").add_subparsers(
        dest="action", required=True
    )
    add = alias.add_parser("add")
    add.add_argument("source")
    add.add_argument("targets", nargs="+")
    rm = alias.add_parser("remove")
    rm.add_argument("source")
    rm.add_argument("targets", nargs="*")
    alias.add_parser("list").add_argument("domain", nargs="?")
    outbound_admin.add_cli(sub)  # queue, dkim, dns
    return p


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("B")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def _size_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "unlimited") else _size(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"postroom {__version__}")
            return 0
        settings = config.load(args.config)
        if args.command == "serve":
            return serve(settings, args.config)
        handler = ADMIN[args.command]
        return asyncio.run(_with_store(settings, lambda store: handler(store, settings, args)))
    except (ConfigError, UsageError, StoreError) as exc:
        print(f"postroom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[int]]) -> int:
    settings.data_path.mkdir(parents=True, exist_ok=True, mode=0o750)
    store = open_store(settings)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def serve(settings: Settings, config_path: str | None = None) -> int:
    from postroom.memory import freeze_start_up_objects
    from postroom.server import Server

    log.setup(settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> None:
        server = Server(settings, config_path or os.environ.get("POSTROOM_CONFIG"))
        await server.start()
        freeze_start_up_objects()
        print(banner(server, config_path), file=sys.stderr, flush=True)
        await server.run_until_signalled()

    asyncio.run(run())
    return 0


def banner(server: Any, config_path: str | None) -> str:
    """What a new user needs on first start: where we listen and what to do next."""
    lines = [f"postroom {__version__} serving {server.settings.hostname}", ""]
    for service, listener in server.listeners.items():
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in listener.bound)
        lines.append(f"  {service:<12} {where}")
    if server.smtp_workers is not None:
        lines.append(f"  (SMTP served by {server.smtp_workers.count} worker processes)")
    cfg = f" -c {config_path}" if config_path else ""
    lines += [
        "",
        f"data: {server.settings.data_path.resolve()}",
        "next: add a domain and a user (in another terminal):",
        f"  postroom{cfg} domain add example.org",
        f"  postroom{cfg} user add you@example.org",
    ]
    return "\n".join(lines)


# -- administration ------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the passwords do not match")
    if not password:
        raise UsageError("empty password")
    return password


def _secrets(password: str) -> tuple[str, Any]:
    from postroom.auth.passwords import hash_password, scram_secrets

    try:
        return hash_password(password), scram_secrets(password)
    except ValueError as exc:  # SASLprep (RFC 4013) forbids control characters and the like
        raise UsageError(f"unusable password: {exc}") from None


def _domain_of(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or not domain or "." not in domain and domain != "localhost":
        raise UsageError(f"{address!r} is not an address like user@example.org")
    return domain.lower()


async def domain_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "add":
        name = args.name.lower()
        await store.add_domain(name)
        print(f"domain {name} added")
        key = dkim.ensure_key(settings.data_path, name)
        if key is not None:
            print(f"DKIM key {key.selector} made; publish the records: postroom dns {name}")
    elif args.action == "remove":
        await store.remove_domain(args.name.lower())
        print(f"domain {args.name.lower()} removed")
    else:
        for name in await store.list_domains():
            print(name)
    return 0


async def user_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        for account in await store.list_accounts(args.domain):
            usage = await store.usage(account.id)
            quota = "unlimited" if account.quota is None else f"{account.quota}"
            print(f"{account.address}\t{usage.messages} messages\t{usage.bytes}/{quota} bytes")
        return 0
    address = args.address.lower()
    _domain_of(address)
    if args.action == "add":
        if not await store.has_domain(_domain_of(address)):
            raise UsageError(f"domain {_domain_of(address)} is not hosted: postroom domain add it")
        hashed, scram = _secrets(_read_password(args))
        await store.create_account(address, hashed, scram, args.quota)
        print(f"user {address} added")
    elif args.action == "passwd":
        hashed, scram = _secrets(_read_password(args))
        await store.set_password(address, hashed, scram)
        print(f"password of {address} changed")
    elif args.action == "quota":
        await store.set_quota(address, args.size)
        print(f"quota of {address} set to {args.size or 'unlimited'}")
    else:
        await store.remove_account(address)
        print(f"user {address} removed")
    return 0


async def alias_cmd(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        for alias in await store.list_aliases(args.domain):
            print(f"{alias.source}\t{' '.join(alias.targets)}")
        return 0
    source = args.source.lower()
    _domain_of("x" + source if source.startswith("@") else source)
    targets = [t.lower() for t in args.targets]
    for target in targets:
        _domain_of(target)
    if args.action == "add":
        await store.add_alias(source, targets)
        print(f"alias {source} -> {' '.join(targets)}")
    else:
        await store.remove_alias(source, targets)
        print(f"alias {source} removed" + (f" for {' '.join(targets)}" if targets else ""))
    return 0


ADMIN: dict[str, Callable[[Store, Settings, argparse.Namespace], Awaitable[int]]] = {
    "domain": domain_cmd,
    "user": user_cmd,
    "alias": alias_cmd,
    **outbound_admin.HANDLERS,
}
