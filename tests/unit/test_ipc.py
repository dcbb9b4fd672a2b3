"""The channel between the server and its SMTP workers: calls both ways, answered out of
order, exceptions carried back, bounded frames, and a peer that goes away."""

from __future__ import annotations

import asyncio
import socket

import pytest

from postroom.ipc import Channel, ChannelClosed, RemoteError
from postroom.store.base import OverQuota


async def pair(handler_a, handler_b, max_frame: int = 1 << 20) -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_unix_connection(sock=a)
    rb, wb = await asyncio.open_unix_connection(sock=b)
    return Channel(ra, wa, handler_a, max_frame), Channel(rb, wb, handler_b, max_frame)


async def test_calls_both_ways_out_of_order_with_exceptions():
    release = asyncio.Event()

    async def server(method, args):
        if method == "slow":
            await release.wait()
            return "slow done"
        if method == "full":
            raise OverQuota("account full")
        if method == "unpicklable":
            return lambda: None
        if method == "join":
            return b"".join(args)
        return sum(args)

    async def worker(method, args):
        return f"worker got {method}"

    a, b = await pair(worker, server)
    tasks = [asyncio.create_task(a.serve()), asyncio.create_task(b.serve())]
    try:
        slow = asyncio.create_task(a.call("slow"))
        assert await a.call("add", 1, 2, 3) == 6  # answered while "slow" still runs
        assert await b.call("ping") == "worker got ping"
        with pytest.raises(OverQuota, match="account full"):
            await a.call("full")
        with pytest.raises(RemoteError):
            await a.call("unpicklable")
        release.set()
        assert await slow == "slow done"
        big = b"x" * 100_000
        assert await a.call("join", big, b"!") == big + b"!"
    finally:
        a.close()
        b.close()
        await asyncio.gather(*tasks)


async def test_a_peer_that_goes_away_fails_calls_in_flight():
    started = asyncio.Event()

    async def never(method, args):
        started.set()
        await asyncio.Event().wait()

    a, b = await pair(never, never)
    tasks = [asyncio.create_task(a.serve()), asyncio.create_task(b.serve())]
    call = asyncio.create_task(a.call("anything"))
    await started.wait()
    b.close()
    with pytest.raises(ChannelClosed):
        await call
    with pytest.raises(ChannelClosed):
        await a.call("again")
    await asyncio.gather(*tasks)


async def test_frames_are_bounded():
    async def echo(method, args):
        return b"z" * 2000 if method == "grow" else args

    a, b = await pair(echo, echo, max_frame=1000)
    tasks = [asyncio.create_task(a.serve()), asyncio.create_task(b.serve())]
    with pytest.raises(ChannelClosed, match="over the bound"):
        await a.call("echo", b"x" * 2000)
    with pytest.raises(RemoteError, match="over the bound"):  # an answer over it: still answered
        await a.call("grow")
    assert await a.call("echo", b"small") == (b"small",)
    # A peer that announces a bigger frame is disconnected rather than buffered.
    b.writer.write((5000).to_bytes(4, "big"))
    await asyncio.wait_for(tasks[0], 5)
    with pytest.raises(ChannelClosed):
        await a.call("echo", b"after")
    b.close()
    await asyncio.gather(*tasks)


async def test_notifications_are_not_answered():
    seen: list[tuple[str, tuple]] = []

    async def server(method, args):
        seen.append((method, args))
        if method == "bad":
            raise ValueError("only logged")
        return "answer nobody reads"

    a, b = await pair(server, server)
    tasks = [asyncio.create_task(a.serve()), asyncio.create_task(b.serve())]
    a.notify("bad")
    a.notify("note", 1, b"x")
    assert await a.call("call") == "answer nobody reads"  # frames are handled in order
    assert seen == [("bad", ()), ("note", (1, b"x")), ("call", ())]
    assert not a._waiting  # nothing was waiting for the notifications
    a.close()
    b.close()
    await asyncio.gather(*tasks)
