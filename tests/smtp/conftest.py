from __future__ import annotations

import pytest

from tests.helpers import ServerThread

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def mx(server: ServerThread) -> ServerThread:
    """The default server with example.test hosting alice and bob."""
    server.add_user(ALICE)
    server.add_user(BOB)
    return server
