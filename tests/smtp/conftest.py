from __future__ import annotations

import pytest

from tests.helpers import ServerThread

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(params=[0, 2], ids=["in-process", "workers"])
def smtp_workers(request: pytest.FixtureRequest) -> int:
    """Every SMTP end-to-end test runs with SMTP served in the server process and by two
    worker processes (``smtp_workers``)."""
    return int(request.param)


@pytest.fixture
def server_defaults(smtp_workers: int) -> dict:
    return {"smtp_workers": smtp_workers}


@pytest.fixture
def mx(server: ServerThread) -> ServerThread:
    """The default server with example.test hosting alice and bob."""
    server.add_user(ALICE)
    server.add_user(BOB)
    return server
