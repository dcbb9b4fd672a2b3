"""What the benchmarks share: free loopback ports, and a postroom server with one account
started inside a benchmark's child process (the code under test, from this checkout)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_uvloop() -> None:
    """Measure the event loop `postroom serve` runs on."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


async def start_with_account(
    data_dir: str, ports: dict[str, int], user: str, password: str, **sections: Any
) -> tuple[Any, Any, Any]:
    """Start a server listening only on ``ports`` ({service: port} on 127.0.0.1), with the
    domain of ``user`` and its account; returns (server, store, INBOX)."""
    sys.path.insert(0, str(REPO / "src"))
    from postroom import config
    from postroom.auth.passwords import hash_password, scram_secrets
    from postroom.memory import freeze_start_up_objects
    from postroom.server import Server

    listen = {s: [f"127.0.0.1:{ports[s]}"] if s in ports else [] for s in config.SERVICES}
    settings = config.from_dict(
        {"hostname": "bench.example.test", "data_dir": data_dir, "listen": listen, **sections}
    )
    server = Server(settings)
    await server.start()
    freeze_start_up_objects()  # as postroom serve does
    assert server.app is not None
    store = server.app.store
    await store.add_domain(user.rpartition("@")[2])
    account = await store.create_account(user, hash_password(password), scram_secrets(password))
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    return server, store, inbox
