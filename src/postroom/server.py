"""Starts the store, the listeners and the background workers; stops them gracefully.

Each service is served by a session module exposing ``async handle(app, conn)``.  A service
whose module is not available answers with its protocol's "service not available" greeting,
so the port plumbing is real from the first day.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from postroom import config, log, privileges
from postroom.app import App
from postroom.auth.authenticator import Authenticator
from postroom.config import (
    FALLBACK_PORTS,
    IMPLICIT_TLS,
    SERVICES,
    STANDARD_PORTS,
    ConfigError,
    Settings,
    apply_reloadable,
    parse_hostport,
)
from postroom.net.connection import Connection
from postroom.net.listener import ConnectionLimits, Listener
from postroom.net.tls import TLSManager, write_private
from postroom.outbound.worker import Outbound
from postroom.smtp.workers import SmtpWorkers
from postroom.store import open_store

SESSION_MODULES = {
    "smtp": "postroom.smtp.session",
    "submission": "postroom.smtp.session",
    "submissions": "postroom.smtp.session",
    "imap": "postroom.imap.session",
    "imaps": "postroom.imap.session",
    "pop3": "postroom.pop3.session",
    "pop3s": "postroom.pop3.session",
}

GRACE_SECONDS = 30.0


def family(service: str) -> str:
    """ "submissions" -> "smtp", "imaps" -> "imap", "pop3s" -> "pop3"."""
    if service in ("smtp", "submission", "submissions"):
        return "smtp"
    return service.rstrip("s") if service != "pop3" else "pop3"


def refusal_line(service: str, hostname: str, reason: str) -> bytes:
    """The protocol's way of saying "not now" before a session begins."""
    fam = family(service)
    if fam == "smtp":
        return f"421 4.3.2 {hostname} {reason}\r\n".encode()
    if fam == "imap":
        return f"* BYE [UNAVAILABLE] {reason}\r\n".encode()
    return f"-ERR [SYS/TEMP] {reason}\r\n".encode()


def address_choices(settings: Settings, service: str) -> list[list[tuple[str, int]]]:
    """Configured addresses; with none configured, the standard port on every interface, then
    the fallback port when the standard one cannot be bound (not root, or taken)."""
    configured = getattr(settings.listen, service)
    if configured is not None:
        return [[parse_hostport(a, f"listen.{service}") for a in configured]]
    return [[("", STANDARD_PORTS[service])], [("", FALLBACK_PORTS[service])]]


def persistent_secret(path: Path) -> bytes:
    """32 random bytes kept in a 0600 file, made on first start (SCRAM's fake salts for unknown
    users must not change across restarts, or a restart would reveal which users exist)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        secret = os.urandom(32)
        write_private(path, secret)
        return secret


class Server:
    def __init__(self, settings: Settings, config_path: str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.listeners: dict[str, Listener] = {}
        self.app: App | None = None
        self.workers: list[asyncio.Task[None]] = []
        self.smtp_workers: SmtpWorkers | None = None

    def _idle_timeout(self, family: str) -> float:
        """Seconds a client of this protocol may stay silent ([limits] *_timeout)."""
        return float(getattr(self.settings.limits, f"{family}_timeout"))

    def port(self, service: str) -> int:
        """The first bound port of a service (tests use ephemeral ports)."""
        return self.listeners[service].bound[0][1]

    async def start(self) -> None:
        s = self.settings
        s.data_path.mkdir(parents=True, exist_ok=True, mode=0o750)
        tls = TLSManager(s.tls.cert, s.tls.key, s.data_path, s.hostname)
        store = open_store(s)
        await store.open()
        auth = Authenticator(store, s.auth, fake_key=persistent_secret(s.data_path / "auth.key"))
        outbound = Outbound(
            s, store, concurrency=s.queue.concurrency, per_destination=s.queue.per_destination
        )
        self.app = App(settings=s, store=store, auth=auth, tls=tls, outbound=outbound)
        limits = ConnectionLimits(s.limits.connections_per_ip, s.limits.connections)
        processes = s.smtp_processes if s.store.backend == "sqlite" else 0
        try:
            await outbound.open()
            for service in SERVICES:
                copies = processes if family(service) == "smtp" else 0
                listener = await self._listen(service, tls, limits, copies=copies)
                if listener is not None:
                    self.listeners[service] = listener
            user = privileges.account(s.user)
            if user is not None:
                privileges.hand_over(s.data_path, user)
            sockets = {
                service: listener.filenos()
                for service, listener in self.listeners.items()
                if processes and family(service) == "smtp"
            }
            if sockets:  # started before we drop privileges: they drop their own
                self.smtp_workers = SmtpWorkers(self.app, processes, sockets)
                await self.smtp_workers.start()
            if user is not None:
                privileges.become(user)
        except BaseException:
            self._stop_accepting()
            if self.smtp_workers is not None:
                await self.smtp_workers.stop(0)
            await outbound.close()
            await store.close()
            raise
        self.workers.extend(self._start_workers())
        for service, listener in self.listeners.items():
            log.event("listening", svc=service, on=" ".join(f"{h}:{p}" for h, p in listener.bound))

    async def _listen(
        self, service: str, tls: TLSManager, limits: ConnectionLimits, *, copies: int
    ) -> Listener | None:
        """Bind a service's addresses and accept on them here; with ``copies`` the SMTP
        workers accept instead, each on its own copy (Listener.start)."""
        choices = address_choices(self.settings, service)
        for n, addresses in enumerate(choices, 1):
            if not addresses:
                return None
            listener = Listener(
                service,
                addresses,
                self._handler(service),
                tls=lambda: tls.context,
                implicit_tls=service in IMPLICIT_TLS,
                idle_timeout=partial(self._idle_timeout, family(service)),
                limits=limits,
                reject=partial(self._reject, service),
            )
            try:
                await listener.start(serve=not copies, copies=max(copies, 1))
                return listener
            except OSError as exc:
                listener.stop_accepting()
                if n == len(choices):
                    where = " ".join(f"{h}:{p}" for h, p in addresses)
                    raise ConfigError(
                        f"listen.{service}: cannot listen on {where}: {exc.strerror}"
                    ) from None
        return None

    def _start_workers(self) -> list[asyncio.Task[None]]:
        """Background workers that live as long as the server."""
        assert self.app is not None and self.app.outbound is not None
        return [asyncio.create_task(self.app.outbound.run(), name="outbound")]

    def _handler(self, service: str) -> Callable[[Connection], Awaitable[None]]:
        try:
            module = importlib.import_module(SESSION_MODULES[service])
        except ModuleNotFoundError:
            return partial(self._unavailable, service)
        return partial(module.handle, self.app)

    async def _unavailable(self, service: str, conn: Connection) -> None:
        await conn.write(refusal_line(service, self.settings.hostname, "service not available"))

    async def _reject(self, service: str, conn: Connection, reason: str) -> None:
        await conn.write(refusal_line(service, self.settings.hostname, reason))

    def reload(self) -> None:
        """SIGHUP: re-read the config file and the certificate.  Limits, auth, relay, queue
        and DNS settings apply to new sessions at once; listeners, data_dir, store and user
        need a restart, which the log says."""
        assert self.app is not None
        try:
            new = config.load(self.config_path) if self.config_path else self.settings
            apply_reloadable(self.settings, new)
            self.app.tls.cert_path = new.tls.cert or self.app.tls.cert_path
            self.app.tls.key_path = new.tls.key or self.app.tls.key_path
            self.app.tls.reload()
            if self.smtp_workers is not None:
                self.smtp_workers.reload()
        except ConfigError as exc:
            log.event("reload failed", logging.ERROR, error=str(exc))
            return
        log.event("reloaded")

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Stop accepting, let sessions in flight finish (up to ``grace``), close the store."""
        self._stop_accepting()
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        await asyncio.gather(
            *(lst.drain(grace) for lst in self.listeners.values()),
            *([self.smtp_workers.stop(grace)] if self.smtp_workers is not None else []),
        )
        if self.app is not None:
            if self.app.outbound is not None:
                await self.app.outbound.close()
            await self.app.store.close()

    def _stop_accepting(self) -> None:
        for listener in self.listeners.values():
            listener.stop_accepting()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop_requested.set)
        loop.add_signal_handler(signal.SIGINT, stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await stop_requested.wait()
        log.event("stopping", grace=GRACE_SECONDS)
        await self.stop()
        log.event("stopped")
