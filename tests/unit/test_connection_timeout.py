"""The idle deadline of Connection.read: moved by every read, enforced by one timer, and
never mistaken for (or hiding) a cancellation from elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from postroom.net.connection import Connection


@contextlib.asynccontextmanager
async def pair(idle_timeout: float) -> AsyncIterator[tuple[Connection, asyncio.StreamWriter]]:
    """A server-side Connection and the client's writer, closed again afterwards."""
    accepted: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(Connection(reader, writer, "test", idle_timeout))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    conn = await accepted
    try:
        yield conn, client
    finally:
        client.close()
        await conn.close()
        server.close()


async def test_reads_within_the_deadline_keep_the_connection() -> None:
    async with pair(0.3) as (conn, client):
        for _ in range(5):  # 0.75 s in all, each read well within its own 0.3 s
            await asyncio.sleep(0.15)
            client.write(b"x")
            assert await conn.read() == b"x"
        with pytest.raises(TimeoutError):
            await conn.read()
        client.write(b"again")  # a timeout does not break the connection for the caller
        assert await conn.read() == b"again"


async def test_a_shorter_timeout_applies_at_once() -> None:
    async with pair(60) as (conn, _):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await conn.read(0.1)
        assert loop.time() - start < 5


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    async with pair(60) as (conn, client):
        reader = asyncio.ensure_future(conn.read())
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        client.write(b"later")
        assert await conn.read() == b"later"
