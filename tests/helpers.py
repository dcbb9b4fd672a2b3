"""A real postroom server on loopback ephemeral ports, run in its own thread and event loop so
tests can drive it with ordinary blocking clients (smtplib, imaplib, poplib, imapclient)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from postroom import config
from postroom.config import SERVICES
from postroom.server import Server

T = TypeVar("T")

PASSWORD = "correct horse battery staple"


def make_settings(data_dir: Path, **overrides: Any) -> config.Settings:
    raw: dict[str, Any] = {
        "hostname": "mx.example.test",
        "data_dir": str(data_dir),
        "listen": {s: ["127.0.0.1:0"] for s in SERVICES},
        # SMTP in the test process unless asked for (tests/smtp runs its end-to-end tests
        # both ways): a worker process per server would double the suite's time.
        "smtp_workers": 0,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config.from_dict(raw)


class ServerThread:
    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = Server(settings)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        try:
            self.call(self.server.start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.stop(grace=5), timeout=60)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (store administration from a test)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def store(self):  # noqa: ANN201 - the Store of the running server
        assert self.server.app is not None
        return self.server.app.store

    def port(self, service: str) -> int:
        return self.server.port(service)

    def add_user(self, address: str, password: str = PASSWORD, quota: int | None = None):  # noqa: ANN201
        """Create the domain if needed and an account; returns the Account."""
        from postroom.auth.passwords import hash_password, scram_secrets

        domain = address.rpartition("@")[2]

        async def create():  # noqa: ANN202
            if not await self.store.has_domain(domain):
                await self.store.add_domain(domain)
            return await self.store.create_account(
                address, hash_password(password), scram_secrets(password), quota
            )

        return self.call(create())


def client_tls_context() -> ssl.SSLContext:
    """Clients trust the server's self-signed certificate in tests."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
