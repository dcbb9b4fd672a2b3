"""200 concurrent aiosmtplib sessions each sending 10 messages: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import re

import aiosmtplib

from tests.smtp.conftest import ALICE, BOB
from tests.smtp.e2e import inbox

SESSIONS = 200
MESSAGES = 10


async def session(port: int, n: int) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
    await client.connect()
    try:
        for i in range(MESSAGES):
            tag = f"{n}-{i}"
            body = f"Subject: load {tag}\r\nMessage-ID: <{tag}@load.example>\r\n\r\n{tag}\r\n"
            errors, _ = await client.sendmail(
                f"sender{n}@remote.example", [ALICE, BOB], body.encode()
            )
            assert errors == {}
    finally:
        await client.quit()


async def test_concurrent_sessions_lose_and_duplicate_nothing(server_factory):
    srv = server_factory(limits={"connections_per_ip": SESSIONS * 2})
    srv.add_user(ALICE)
    srv.add_user(BOB)
    port = srv.port("smtp")
    await asyncio.gather(*(session(port, n) for n in range(SESSIONS)))
    expected = {f"{n}-{i}" for n in range(SESSIONS) for i in range(MESSAGES)}
    for address in (ALICE, BOB):
        tags = [re.search(rb"Message-ID: <(\S+)@load", m)[1].decode() for m in inbox(srv, address)]
        assert len(tags) == len(expected)
        assert set(tags) == expected
