"""The server process's side of its SMTP worker processes (smtp/worker.py).

The server binds the SMTP listeners, one socket per worker in an SO_REUSEPORT group (the
kernel then wakes only the worker a connection goes to), and hands them to ``smtp_workers``
processes, which accept on them; it hears of the deliveries they commit, answers their
calls (the outbound queue, SASL exchanges), forwards reloads and stops, and starts a worker
again when one dies, as Postfix's master restarts its daemons.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postroom import log
from postroom.ipc import Channel, ChannelClosed
from postroom.smtp import steering
from postroom.smtp.worker import max_frame
from postroom.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from postroom.app import App
    from postroom.auth.authenticator import SaslExchange

RESTART_DELAY = 1.0  # seconds before a worker that died is started again
MAX_RESTART_DELAY = 60.0  # ... doubling while it fails to start, up to this
START_TIMEOUT = 60.0


class WorkerProcess:
    """One worker: its process, its channel, and the SASL exchanges it has open here."""

    def __init__(self, pool: SmtpWorkers, number: int) -> None:
        self.pool = pool
        self.number = number
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.exchanges: dict[int, SaslExchange] = {}
        self._ids = itertools.count(1)

    async def start(self) -> asyncio.Task[None]:
        """Spawn the process and wait until it accepts; returns the task serving its calls."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = self.pool.sockets_of(self.number)
        self.exchanges = {}
        src = str(Path(__file__).resolve().parents[2])  # the postroom this process runs
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        with theirs:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "postroom.smtp.worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno(), *(fd for fds_ in fds.values() for fd in fds_)],
                stdin=subprocess.DEVNULL,
                env=env,
            )
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        self.channel = Channel(reader, writer, self._handle, max_frame(self.pool.app.settings))
        serving = asyncio.create_task(self._serve(self.channel))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self.channel.call(
                    "start", self.pool.app.settings, fds, self.pool.count, self.pool.steers(self)
                )
        except BaseException:
            serving.cancel()
            self.kill()
            raise
        log.event("smtp worker started", worker=self.number, pid=self.proc.pid)
        return serving

    async def _serve(self, channel: Channel) -> None:
        """The worker's calls, until it exits."""
        try:
            await channel.serve()
        finally:
            # A worker that died between a commit and its report: its texts still get indexed.
            self._store().committed_elsewhere([])

    def _store(self) -> SqliteStore:
        store = self.pool.app.store
        assert isinstance(store, SqliteStore)
        return store

    async def _handle(self, method: str, args: tuple[Any, ...]) -> Any:
        app = self.pool.app
        if method == "committed":
            self._store().committed_elsewhere(*args)
            return None
        if method == "enqueue":
            sender, recipients, data, options = args
            return await app.enqueue(sender, recipients, data, **options)
        if method == "sasl_start":
            exchange = app.auth.sasl(*args)
            if exchange is None:
                raise ValueError("mechanism not available")
            exchange_id = next(self._ids)
            self.exchanges[exchange_id] = exchange
            return exchange_id
        if method == "sasl_step":
            exchange_id, response = args
            exchange = self.exchanges[exchange_id]
            step = await exchange.step(response)
            if exchange.done:
                self.exchanges.pop(exchange_id, None)
            return step
        if method == "sasl_cancel":
            exchange = self.exchanges.pop(args[0], None)
            if exchange is not None:
                exchange.cancel()
            return None
        raise ValueError(f"unknown call {method!r}")

    async def call(self, method: str, *args: Any) -> None:
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed, ConnectionError):
                await self.channel.call(method, *args)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    async def wait(self, timeout: float) -> None:
        """Wait for the process to exit, killing it after ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)


class SmtpWorkers:
    def __init__(self, app: App, count: int, sockets: dict[str, list[list[int]]]) -> None:
        """``sockets``: per service, the listening sockets of each copy (Listener.filenos);
        worker n accepts on copy n, or all on the one copy there is without SO_REUSEPORT."""
        self.app = app
        self.count = count
        self.sockets = sockets
        self.workers = [WorkerProcess(self, n) for n in range(1, count + 1)]
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False

    def steers(self, worker: WorkerProcess) -> bool:
        """Whether ``worker`` steers its groups: the first, when each worker has its own
        socket (steering.py)."""
        return (
            steering.AVAILABLE
            and worker.number == 1
            and all(len(copies) > 1 for copies in self.sockets.values())
        )

    def sockets_of(self, number: int) -> dict[str, list[int]]:
        return {
            service: copies[(number - 1) % len(copies)] for service, copies in self.sockets.items()
        }

    async def start(self) -> None:
        """Start every worker; returns once all accept connections."""
        served = await asyncio.gather(*(w.start() for w in self.workers))
        self._supervisors = [
            asyncio.create_task(self._supervise(w, serving))
            for w, serving in zip(self.workers, served, strict=True)
        ]

    async def _supervise(self, worker: WorkerProcess, serving: asyncio.Task[None]) -> None:
        """Start a worker again when it dies; one that keeps failing to start is tried less
        and less often (up to once a minute), as Postfix's master throttles a daemon."""
        delay = RESTART_DELAY
        while True:
            await asyncio.shield(serving)  # until the channel closes: the worker has gone
            await worker.wait(10.0)
            if self._stopping:
                return
            code = worker.proc.returncode if worker.proc is not None else None
            log.event("smtp worker died", logging.ERROR, worker=worker.number, status=code)
            if self.steers(worker):  # its replacement steers to itself again once started
                steering.to_second(fd for fds in self.sockets_of(1).values() for fd in fds)
            await asyncio.sleep(delay)
            try:
                serving = await worker.start()
                delay = RESTART_DELAY
            except Exception as exc:  # noqa: BLE001 - keep trying
                log.event("smtp worker failed to start", logging.ERROR, error=repr(exc))
                serving = asyncio.create_task(asyncio.sleep(0))
                delay = min(delay * 2, MAX_RESTART_DELAY)

    def reload(self) -> None:
        for worker in self.workers:
            if worker.channel is not None:
                worker.channel.notify("reload", self.app.settings)

    async def stop(self, grace: float) -> None:
        """Workers stop accepting, finish the messages they are receiving within ``grace``,
        and exit; their calls are served until they do."""
        self._stopping = True
        await asyncio.gather(*(w.call("stop", grace) for w in self.workers))
        await asyncio.gather(*(w.wait(10.0) for w in self.workers))
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
