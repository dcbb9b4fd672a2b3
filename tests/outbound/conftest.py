from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom import config
from postroom.outbound.worker import Outbound
from postroom.store.sqlite import SqliteStore
from tests.outbound.dnsserver import LoopbackDNS
from tests.outbound.pki import CA
from tests.outbound.sink import SinkServer

SENDER = "alice@example.test"


def settings_for(data_dir: Path, **overrides: Any) -> config.Settings:
    raw: dict[str, Any] = {
        "hostname": "mx.example.test",
        "data_dir": str(data_dir),
        "queue": {"first_retry": 0.05, "max_retry": 0.2, "delay_warning_after": 0.0},
    }
    for key, value in overrides.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return config.from_dict(raw)


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll an (async or plain) predicate until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def dns() -> Iterator[LoopbackDNS]:
    server = LoopbackDNS()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ca(tmp_path) -> CA:
    return CA(tmp_path / "pki")


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    await s.add_domain("example.test")
    await s.create_account(SENDER, "x", None)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[..., Any]]:
    """``await sinks(tls=..., auth=...)`` starts an SMTP sink, stopped at the end."""
    started: list[SinkServer] = []

    async def start(**kwargs: Any) -> SinkServer:
        server = await SinkServer.start(**kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            await server.stop()


class Harness:
    """Outbounds on the test store and data folder; ``stop`` then ``start`` again is a restart."""

    def __init__(self, data_dir: Path, store: SqliteStore) -> None:
        self.data_dir = data_dir
        self.store = store
        self.running: dict[int, tuple[Outbound, asyncio.Task | None]] = {}

    async def start(
        self, *, run: bool = True, settings: dict | None = None, **kwargs: Any
    ) -> Outbound:
        """An opened Outbound (its worker running unless ``run`` is False)."""
        ob = Outbound(settings_for(self.data_dir, **(settings or {})), self.store, **kwargs)
        await ob.open()
        task = asyncio.create_task(ob.run()) if run else None
        self.running[id(ob)] = (ob, task)
        return ob

    async def stop(self, ob: Outbound) -> None:
        _, task = self.running.pop(id(ob))
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await ob.close()


@pytest.fixture
async def harness(tmp_path, store, sinks) -> AsyncIterator[Harness]:
    # Depends on ``sinks`` so that outbounds stop before the sinks they talk to.
    h = Harness(tmp_path / "data", store)
    try:
        yield h
    finally:
        for ob, _ in list(h.running.values()):
            await h.stop(ob)
