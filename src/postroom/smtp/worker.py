"""An SMTP worker process: serves the SMTP listeners the server process bound, on its own core.

One event loop on one core runs SMTP's protocol work (reading DATA, commands, the MIME parse
of each message) for a few hundred messages a second; the server process starts
``smtp_workers`` of these (``python -m postroom.smtp.worker FD``) so that work runs on every
core, like Postfix's smtpd processes.  Each worker opens the same store as the server and
commits its own deliveries (group commit, the writers of all processes taking turns on the
data folder's write lock), so a message is acknowledged without a round trip through the
server process.  The server hears of the commits over the channel (ipc.py), a few
milliseconds later and several at a time, and announces them to its own sessions (IMAP
IDLE, POP3), indexes the texts and checkpoints the log: the worker's store does no
background work.  What keeps shared state in memory is asked of the server process: the
outbound queue, and SASL exchanges, so brute-force throttling counts every attempt in one
place.

The channel is the worker's lifeline: when the server process goes away, the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from postroom import log, privileges
from postroom.app import App
from postroom.auth.authenticator import Authenticator, AuthOutcome
from postroom.auth.sasl import Challenge
from postroom.config import IMPLICIT_TLS, Settings, apply_reloadable
from postroom.ipc import Channel, ChannelClosed
from postroom.memory import freeze_start_up_objects
from postroom.net.connection import Connection
from postroom.net.listener import ConnectionLimits, Listener
from postroom.net.tls import TLSManager
from postroom.smtp import session
from postroom.smtp.steering import Steering
from postroom.store.base import StoreError
from postroom.store.notifier import Change
from postroom.store.sqlite import SqliteStore

# Seconds the changes of commits are collected before they go to the server process together:
# one wake-up of the server per few messages (IMAP IDLE hears of them that much later).
REPORT_DELAY = 0.005


def max_frame(settings: Settings) -> int:
    """A call can carry a message (to the outbound queue): bounded by the size."""
    return 2 * settings.limits.message_size + (1 << 20)


class CommitReports:
    """The worker's store's ``report``: the changes of each committed batch, handed over by
    the writer thread, are collected on the event loop and sent to the server process at
    most ``REPORT_DELAY`` later, together with those of the batches committed meanwhile."""

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self._loop = loop
        self._changes: list[Change] = []
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, changes: list[Change]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are exiting
            self._loop.call_soon_threadsafe(self._add, changes)

    def _add(self, changes: list[Change]) -> None:
        self._changes += changes
        if self._timer is None:
            self._timer = self._loop.call_later(REPORT_DELAY, self.flush)

    def flush(self) -> None:
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        changes, self._changes = self._changes, []
        self.channel.notify("committed", changes)


class RemoteExchange:
    """A SASL exchange run by the server process, where throttling counts every attempt.
    It starts there with its first step, as ``Authenticator.sasl`` itself is synchronous."""

    def __init__(self, channel: Channel, mechanism: str, ip: str, secure: bool) -> None:
        self.channel = channel
        self._mechanism = mechanism
        self._start = (mechanism, ip, secure)
        self._id: int | None = None
        self._over = False

    @property
    def mechanism(self) -> str:
        return self._mechanism

    async def step(self, response: bytes | None) -> Challenge | AuthOutcome:
        if self._over:
            return AuthOutcome(None, False, "authentication exchange is over")
        try:
            if self._id is None:
                self._id = await self.channel.call("sasl_start", *self._start)
            result: Challenge | AuthOutcome = await self.channel.call(
                "sasl_step", self._id, response
            )
        except ChannelClosed:
            self._over = True
            return AuthOutcome(None, True, "authentication is not available")
        self._over = isinstance(result, AuthOutcome)
        return result

    def cancel(self) -> None:
        if self._over:
            return
        self._over = True
        if self._id is not None:
            self.channel.notify("sasl_cancel", self._id)


class RemoteAuthenticator(Authenticator):
    """Advertises mechanisms from the settings; exchanges run in the server process."""

    def __init__(self, store: SqliteStore, settings: Settings, channel: Channel) -> None:
        super().__init__(store, settings.auth)
        self.channel = channel

    def sasl(self, mechanism: str, ip: str, secure: bool) -> Any:
        name = mechanism.upper()
        if name not in self.mechanisms(secure):
            return None
        return RemoteExchange(self.channel, name, ip, secure)


@dataclass
class WorkerApp(App):
    """The outbound queue is the server process's: messages for it go over the channel."""

    channel: Channel = field(kw_only=True)

    async def enqueue(self, sender: str, recipients: list[Any], data: bytes, **options: Any) -> str:
        try:
            queue_id: str = await self.channel.call("enqueue", sender, recipients, data, options)
        except ChannelClosed as exc:
            raise StoreError(f"the server process is not reachable: {exc}") from None
        return queue_id


class Worker:
    """The worker's side of the channel: serves listeners until told to stop."""

    def __init__(self, channel_sock: socket.socket) -> None:
        self.channel_sock = channel_sock
        self.reports: CommitReports | None = None
        self.listeners: list[Listener] = []
        self.app: WorkerApp | None = None
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=self.channel_sock)
        # Until the settings arrive the bound is the smallest that can carry them.
        self.channel = Channel(reader, writer, self._handle, 1 << 20)
        serving = asyncio.create_task(self.channel.serve())
        try:
            await asyncio.wait(
                [serving, asyncio.create_task(self.stopped.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            await self._stop(5.0)
            serving.cancel()
            self.channel.close()

    async def _handle(self, method: str, args: tuple[Any, ...]) -> Any:
        if method == "start":
            await self._start(*args)
            freeze_start_up_objects()
        elif method == "reload":
            self._reload(*args)
        elif method == "stop":
            await self._stop(*args)
            self.stopped.set()
        else:
            raise ValueError(f"unknown call {method!r}")

    async def _start(
        self, settings: Settings, sockets: dict[str, list[int]], workers: int, first: bool
    ) -> None:
        """``first``: this worker's sockets are the first of their groups (steering.py)."""
        log.setup(settings.log_level)
        user = privileges.account(settings.user)
        if user is not None:
            privileges.become(user)
        self.channel.max_frame = max_frame(settings)
        self.reports = CommitReports(self.channel, asyncio.get_running_loop())
        store = SqliteStore(
            settings.data_path, limits=settings.limits, report=self.reports, solo=self._solo
        )
        await store.open()
        tls = TLSManager(settings.tls.cert, settings.tls.key, settings.data_path, settings.hostname)
        auth = RemoteAuthenticator(store, settings, self.channel)
        self.app = WorkerApp(
            settings=settings, store=store, auth=auth, tls=tls, channel=self.channel
        )
        # Each worker takes its share of the connection limits: the kernel spreads a client's
        # connections over the workers' sockets (SO_REUSEPORT).
        limits = ConnectionLimits(
            math.ceil(settings.limits.connections_per_ip / workers),
            math.ceil(settings.limits.connections / workers),
        )
        listening = {
            service: [socket.socket(fileno=fd) for fd in fds] for service, fds in sockets.items()
        }
        steering = Steering([s for socks in listening.values() for s in socks]) if first else None
        handler = partial(session.handle, self.app)
        for service, socks in listening.items():
            listener = Listener(
                service,
                [],
                steering.counted(handler) if steering is not None else handler,
                tls=lambda: tls.context,
                implicit_tls=service in IMPLICIT_TLS,
                idle_timeout=lambda: float(settings.limits.smtp_timeout),
                limits=limits,
                reject=partial(self._reject, settings),
            )
            await listener.start(sockets=socks)
            self.listeners.append(listener)
        if steering is not None:
            steering.start()
        log.event("smtp worker ready", pid=os.getpid())

    def _solo(self) -> bool:
        """At most one session open: a lone client waits for each commit anyway, so the
        store may commit on this loop's thread (store/writer.py)."""
        return sum(len(listener.sessions) for listener in self.listeners) <= 1

    async def _reject(self, settings: Settings, conn: Connection, reason: str) -> None:
        await conn.write(f"421 4.3.2 {settings.hostname} {reason}\r\n".encode())

    def _reload(self, settings: Settings) -> None:
        assert self.app is not None
        apply_reloadable(self.app.settings, settings)
        self.app.tls.cert_path = settings.tls.cert or self.app.tls.cert_path
        self.app.tls.key_path = settings.tls.key or self.app.tls.key_path
        self.app.tls.reload()

    async def _stop(self, grace: float) -> None:
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            listener.stop_accepting()
        await asyncio.gather(*(listener.drain(grace) for listener in listeners))
        if self.app is not None:
            await self.app.store.close()
        if self.reports is not None:
            await asyncio.sleep(0)  # the last batches' reports, handed over by the writer
            self.reports.flush()


def main(argv: list[str]) -> int:
    # The server process handles signals and tells its workers what to do over the channel.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    channel_sock = socket.socket(fileno=int(argv[1]))
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(Worker(channel_sock).run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
