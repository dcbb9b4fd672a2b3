"""The shared connection layer: limits, implicit TLS, STARTTLS buffer discard, drain."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from postroom.net.connection import Connection
from postroom.net.listener import ConnectionLimits, Listener
from postroom.net.tls import TLSManager
from tests.helpers import client_tls_context


@pytest.fixture
def tls(tmp_path) -> TLSManager:
    return TLSManager(None, None, tmp_path, "mx.example.test")


async def echo(conn: Connection) -> None:
    """A toy line protocol: STARTTLS upgrades, anything else is echoed, QUIT ends."""
    await conn.write(b"hello\r\n")
    buffer = b""
    while True:
        buffer += await conn.read()
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip() == b"QUIT":
                return
            if line.strip() == b"STARTTLS":
                conn.freeze()
                await conn.write(b"go\r\n")
                buffer = b""  # our own core's buffer must go too
                await conn.start_tls(conn.tls_context)  # type: ignore[attr-defined]
                continue
            await conn.write(b"echo " + line.strip() + (b" tls" if conn.secure else b"") + b"\r\n")


def make_listener(tls: TLSManager, *, implicit: bool = False, per_ip: int = 10) -> Listener:
    async def handler(conn: Connection) -> None:
        conn.tls_context = tls.context  # type: ignore[attr-defined]
        await echo(conn)

    async def reject(conn: Connection, reason: str) -> None:
        await conn.write(f"no {reason}\r\n".encode())

    return Listener(
        "test",
        [("127.0.0.1", 0)],
        handler,
        tls=lambda: tls.context,
        implicit_tls=implicit,
        idle_timeout=lambda: 5,
        limits=ConnectionLimits(per_ip, 100),
        reject=reject,
    )


async def test_plain_echo_and_per_ip_limit(tls):
    listener = make_listener(tls, per_ip=2)
    await listener.start()
    port = listener.bound[0][1]
    try:
        first = await asyncio.open_connection("127.0.0.1", port)
        second = await asyncio.open_connection("127.0.0.1", port)
        assert await first[0].readline() == b"hello\r\n"
        assert await second[0].readline() == b"hello\r\n"
        third = await asyncio.open_connection("127.0.0.1", port)
        assert (await third[0].readline()).startswith(b"no too many connections")
        assert await third[0].read() == b""  # closed by the server
        first[1].write(b"ping\r\nQUIT\r\n")
        assert await first[0].readline() == b"echo ping\r\n"
        assert await first[0].read() == b""
        # the slot is free again
        fourth = await asyncio.open_connection("127.0.0.1", port)
        assert await fourth[0].readline() == b"hello\r\n"
        for _, w in (second, third, fourth):
            w.close()
    finally:
        listener.stop_accepting()
        await listener.drain(2)


async def test_implicit_tls(tls):
    listener = make_listener(tls, implicit=True)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.bound[0][1], ssl=client_tls_context()
        )
        assert await reader.readline() == b"hello\r\n"
        writer.write(b"x\r\n")
        assert await reader.readline() == b"echo x tls\r\n"
        writer.close()
    finally:
        listener.stop_accepting()
        await listener.drain(2)


async def test_starttls_discards_pipelined_plaintext(tls):
    """Bytes sent in the same packet as STARTTLS must never run after the handshake
    (RFC 3207 §4.2; the CVE-2011-0411 injection)."""
    listener = make_listener(tls)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound[0][1])
        assert await reader.readline() == b"hello\r\n"
        writer.write(b"STARTTLS\r\nINJECTED\r\n")
        assert await reader.readline() == b"go\r\n"
        await asyncio.sleep(0.2)  # let the injected bytes reach the server before the handshake
        await writer.start_tls(client_tls_context())
        writer.write(b"after\r\n")
        assert await reader.readline() == b"echo after tls\r\n"
        writer.write(b"QUIT\r\n")
        writer.close()
    finally:
        listener.stop_accepting()
        await listener.drain(2)


async def test_drain_waits_then_cancels(tls):
    listener = make_listener(tls)
    await listener.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound[0][1])
    assert await reader.readline() == b"hello\r\n"
    listener.stop_accepting()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", listener.bound[0][1] if listener.bound else 1)
    await listener.drain(0.5)  # the idle session is cancelled after the grace period
    assert await reader.read() == b""
    writer.close()


def test_self_signed_is_reused(tmp_path):
    first = TLSManager(None, None, tmp_path, "a.test")
    second = TLSManager(None, None, tmp_path, "a.test")
    assert first.cert_path == second.cert_path
    assert (tmp_path / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert isinstance(second.context, ssl.SSLContext)


async def test_drain_lets_busy_sessions_finish(tls):
    """A session receiving mail (conn.busy) finishes its work during a graceful stop."""
    finished = asyncio.Event()

    async def handler(conn: Connection) -> None:
        await conn.write(b"hello\r\n")
        await conn.read()
        conn.busy = True
        await asyncio.sleep(0.3)  # committing a message
        conn.busy = False
        await conn.write(b"250 done\r\n")
        finished.set()

    listener = Listener(
        "test",
        [("127.0.0.1", 0)],
        handler,
        tls=lambda: tls.context,
        implicit_tls=False,
        idle_timeout=lambda: 5,
        limits=ConnectionLimits(10, 10),
    )
    await listener.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound[0][1])
    assert await reader.readline() == b"hello\r\n"
    writer.write(b"DATA\r\n")
    await asyncio.sleep(0.1)
    listener.stop_accepting()
    await listener.drain(5)
    assert finished.is_set()
    assert await reader.readline() == b"250 done\r\n"
    writer.close()
