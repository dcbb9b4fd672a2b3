"""Steering over a real SO_REUSEPORT group (smtp/steering.py): which listening socket the
kernel hands each new connection to, as the first worker's session count crosses the bounds."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Iterator

import pytest

from postroom.smtp import steering

pytestmark = pytest.mark.skipif(not steering.AVAILABLE, reason="a Linux socket option")


@pytest.fixture
def group() -> Iterator[list[socket.socket]]:
    """Two listening sockets in one group, in the order they started listening."""
    socks = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0))
        sock.listen(64)
        socks.append(sock)
    yield socks
    for sock in socks:
        sock.close()


def landings(group: list[socket.socket], connections: int = 40) -> set[int]:
    """The sockets (by index) that new connections were queued on."""
    found = set()
    for _ in range(connections):
        with socket.create_connection(group[0].getsockname(), timeout=5):
            ready, _, _ = select.select(group, [], [], 5)
            for sock in ready:
                found.add(group.index(sock))
                sock.accept()[0].close()
    return found


async def test_connections_go_to_the_first_socket_until_it_is_busy(group):
    steer = steering.Steering([group[0]])
    assert landings(group) == {0, 1}  # the kernel's hash, before any program
    steer.start()
    assert landings(group) == {0}
    release = asyncio.Event()
    session = steer.counted(lambda conn: release.wait())
    busy = [asyncio.create_task(session(None)) for _ in range(steering.BUSY)]
    await asyncio.sleep(0)
    assert landings(group) == {0, 1}
    release.set()
    await asyncio.gather(*busy)
    assert landings(group) == {0}


async def test_the_count_comes_back_down_when_a_session_fails(group):
    steer = steering.Steering([group[0]])
    steer.start()

    async def failing(conn: object) -> None:
        raise ConnectionResetError

    session = steer.counted(failing)
    for _ in range(steering.BUSY + 2):
        with pytest.raises(ConnectionResetError):
            await session(None)
    assert landings(group) == {0}


def test_the_server_sends_everything_to_the_second_socket(group):
    steering.to_second([group[0].fileno()])
    assert landings(group) == {1}
