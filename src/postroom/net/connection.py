"""One client connection, as every protocol session sees it.

Sessions read raw chunks and feed them to their sans-IO core; they write whole replies.
STARTTLS goes through ``freeze`` then ``start_tls``, which throw away anything the client sent
before the go-ahead reply (RFC 3207 §4.2, CVE-2011-0411 class of command injection).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import ssl

from postroom import log

_ids = itertools.count(1)
_prefix = os.urandom(3).hex()

READ_CHUNK = 65536


class ConnectionClosed(Exception):
    """The peer went away, or the connection was closed under us."""


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: str,
        idle_timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.service = service
        self.idle_timeout = idle_timeout
        self.session_id = f"{_prefix}{next(_ids):x}"
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or ("?", 0)
        self.peer_ip: str = peer[0]
        self.peer_port: int = peer[1]
        self.local_ip: str = local[0]
        self.local_port: int = local[1]
        self._closed = False
        self._deadline = 0.0  # of the read in progress (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task[object] | None = None
        self._expired = False
        # True while a message is being received or committed (SMTP DATA/BDAT, IMAP APPEND):
        # a graceful stop waits for busy sessions and ends idle ones at once.
        self.busy = False
        self.draining = False  # the server is stopping: end the session once not busy
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    # -- state ---------------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    def tls_info(self) -> str | None:
        """``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` for Received headers and logs."""
        obj: ssl.SSLObject | None = self.writer.get_extra_info("ssl_object")
        if obj is None:
            return None
        cipher = obj.cipher()
        return f"{obj.version()} {cipher[0] if cipher else '?'}"

    # -- I/O -----------------------------------------------------------------------------
    async def read(self, timeout: float | None = None) -> bytes:
        """Up to 64 KiB; raises TimeoutError after the idle timeout, ConnectionClosed at EOF.

        The timeout is a deadline that each read moves forward and one timer per connection
        checks when it fires, rather than a timer scheduled and cancelled around every read:
        sessions read many times per message and the timer heap was a visible cost."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._deadline = loop.time() + (self.idle_timeout if timeout is None else timeout)
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._deadline, self._check_deadline)
        self._reading = task
        cancelling = task.cancelling()
        try:
            data = await self.reader.read(READ_CHUNK)
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:  # ours alone, not a shutdown as well
                    raise TimeoutError from None
            raise
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None
        finally:
            self._reading = None
        if not data:
            raise ConnectionClosed("eof")
        return data

    def _check_deadline(self) -> None:
        self._timer = None
        task = self._reading
        if task is None:  # not reading now: the next read arms the timer again
            return
        loop = task.get_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check_deadline)
            return
        self._expired = True
        task.cancel()

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("closed")
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    def write_nowait(self, data: bytes) -> None:
        """Queue bytes without waiting; pair with ``drain`` when batching replies."""
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from None

    def freeze(self) -> int:
        """Stop reading and drop what the client sent so far; call it *before* sending the
        reply that starts TLS (RFC 3207 §4.2).  Bytes sent before that reply are plaintext
        injection; bytes sent after it are the TLS handshake and stay in the socket for the
        TLS layer.  Returns how many bytes were dropped."""
        self.writer.transport.pause_reading()
        discarded = len(self.reader._buffer)  # noqa: SLF001 - no public API to flush it
        self.reader._buffer.clear()  # noqa: SLF001
        return discarded

    async def start_tls(self, context: ssl.SSLContext, timeout: float = 30.0) -> int:
        """Upgrade to TLS (call ``freeze`` before sending the go-ahead reply).  Returns how many
        plaintext bytes were dropped; the caller must also drop what its core buffered."""
        discarded = self.freeze()
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=timeout)
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError) as exc:
            raise ConnectionClosed(f"tls handshake: {exc}") from None
        return discarded

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.writer.close()
            if not self.secure and not self.writer.transport.get_write_buffer_size():
                return  # nothing left to send: the loop closes the socket in its next turn
            async with asyncio.timeout(5):  # TLS says goodbye, or the last bytes drain
                await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
            pass

    def log(self, event: str, level: int = logging.INFO, **fields: object) -> None:
        log.event(event, level, sid=self.session_id, svc=self.service, **fields)
