"""Listening sockets shared by every protocol: implicit TLS, per-IP and total connection
limits, graceful stop that lets in-flight sessions finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from postroom.net.connection import Connection, ConnectionClosed

Handler = Callable[[Connection], Awaitable[None]]


class Listener:
    """Serves one protocol on some addresses.  With implicit TLS the handshake is done by the
    event loop before the handler runs (``tls()`` is the context, reloaded in place);
    ``idle_timeout()`` is read for each new connection, so a reload applies to them."""

    def __init__(
        self,
        service: str,
        addresses: list[tuple[str, int]],
        handler: Handler,
        *,
        tls: Callable[[], ssl.SSLContext],
        implicit_tls: bool,
        idle_timeout: Callable[[], float],
        limits: ConnectionLimits,
        reject: Callable[[Connection, str], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self.addresses = addresses
        self.handler = handler
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.reject = reject
        self.servers: list[asyncio.Server] = []
        self.copies: list[list[socket.socket]] = []  # for the SMTP workers
        self.sessions: dict[asyncio.Task[None], Connection] = {}

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually bound (ephemeral ports resolved)."""
        out = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append((host, port))
        return out

    async def start(
        self, *, serve: bool = True, sockets: Sequence[socket.socket] = (), copies: int = 1
    ) -> None:
        """Bind the addresses and accept on them.  With ``serve`` false, only bind, for the
        SMTP workers to accept on (``filenos``): ``copies`` sockets per address in one
        SO_REUSEPORT group, one per worker, so the kernel hands each connection to one
        worker instead of waking them all.  A worker passes the ``sockets`` it was given."""
        tls = {
            "ssl": self.tls() if self.implicit_tls else None,
            "ssl_handshake_timeout": 30 if self.implicit_tls else None,
        }
        for sock in sockets:
            server = await asyncio.start_server(
                self._accept, sock=sock, backlog=1024, limit=65536, **tls
            )
            self.servers.append(server)
        group = copies > 1 and hasattr(socket, "SO_REUSEPORT")
        for host, port in self.addresses:
            server = await asyncio.start_server(
                self._accept,
                host or None,
                port,
                reuse_address=True,
                reuse_port=group or None,
                backlog=1024,
                limit=65536,
                start_serving=serve,
                **tls,
            )
            self.servers.append(server)
        if serve:
            return
        self.copies = [[s for server in self.servers for s in _listening(server.sockets)]]
        if group:
            first = self.copies[0]
            self.copies += [[_bind_like(s) for s in first] for _ in range(copies - 1)]

    def filenos(self) -> list[list[int]]:
        """The listening sockets of each copy (``start(serve=False, copies=...)``)."""
        return [[sock.fileno() for sock in copy] for copy in self.copies]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, self.service, self.idle_timeout())
        task = asyncio.current_task()
        assert task is not None
        refusal = self.limits.admit(conn.peer_ip)
        if refusal:
            conn.log("refused", logging.WARNING, ip=conn.peer_ip, reason=refusal)
            try:
                if self.reject is not None:
                    await self.reject(conn, refusal)
            except (ConnectionClosed, TimeoutError):
                pass
            await conn.close()
            return
        self.sessions[task] = conn
        conn.log("connect", ip=conn.peer_ip, port=conn.peer_port, local=conn.local_port)
        try:
            await self.handler(conn)
        except (ConnectionClosed, TimeoutError) as exc:
            conn.log("disconnect", reason=str(exc) or type(exc).__name__)
        except asyncio.CancelledError:
            conn.log("disconnect", reason="shutdown")
        except Exception:
            logging.getLogger("postroom").exception("session %s crashed", conn.session_id)
        finally:
            self.limits.release(conn.peer_ip)
            self.sessions.pop(task, None)
            # cancelled again while closing at shutdown: the socket is closed anyway
            with contextlib.suppress(asyncio.CancelledError):
                await conn.close()
            conn.log("close")

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()
        for copy in self.copies:
            for sock in copy:
                sock.close()
        self.copies = []

    async def drain(self, timeout: float) -> None:
        """End idle sessions now; let busy ones (receiving mail) finish within ``timeout``,
        then cancel whatever is left."""
        for task, conn in list(self.sessions.items()):
            if conn.busy:
                conn.draining = True
            else:
                task.cancel()
        if self.sessions:
            _, pending = await asyncio.wait(set(self.sessions), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)


def _listening(bound: Sequence[object]) -> list[socket.socket]:
    """The sockets of a server that is not serving, made to listen: connections queue until
    a worker accepts them."""
    out = []
    for transport_socket in bound:
        sock = socket.socket(fileno=os.dup(transport_socket.fileno()))  # type: ignore[attr-defined]
        sock.listen(1024)
        out.append(sock)
    return out


def _bind_like(sock: socket.socket) -> socket.socket:
    """Another listening socket on the same address, in the same SO_REUSEPORT group."""
    twin = socket.socket(sock.family, socket.SOCK_STREAM)
    twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        twin.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    twin.bind(sock.getsockname())
    twin.listen(1024)
    twin.setblocking(False)
    return twin


class ConnectionLimits:
    """Bounds concurrent connections per client IP and in total (DESIGN principle 7)."""

    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip = per_ip
        self.total = total
        self.counts: Counter[str] = Counter()
        self.current = 0

    def admit(self, ip: str) -> str | None:
        if self.current >= self.total:
            return "too many connections"
        if self.counts[ip] >= self.per_ip:
            return "too many connections from your address"
        self.counts[ip] += 1
        self.current += 1
        return None

    def release(self, ip: str) -> None:
        self.current -= 1
        self.counts[ip] -= 1
        if self.counts[ip] <= 0:
            del self.counts[ip]
