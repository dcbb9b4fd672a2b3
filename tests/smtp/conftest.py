from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerThread, make_settings

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(params=[0, 2], ids=["in-process", "workers"])
def smtp_workers(request: pytest.FixtureRequest) -> int:
    """Every SMTP end-to-end test runs with SMTP served in the server process and by two
    worker processes (``smtp_workers``)."""
    return int(request.param)


@pytest.fixture
def server(tmp_path, smtp_workers: int) -> Iterator[ServerThread]:
    with ServerThread(make_settings(tmp_path / "data", smtp_workers=smtp_workers)) as srv:
        yield srv


@pytest.fixture
def server_factory(tmp_path, smtp_workers: int) -> Iterator:
    started: list[ServerThread] = []

    def start(**overrides) -> ServerThread:
        overrides.setdefault("smtp_workers", smtp_workers)
        srv = ServerThread(make_settings(tmp_path / f"data{len(started)}", **overrides))
        srv.__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.__exit__(None, None, None)


@pytest.fixture
def mx(server: ServerThread) -> ServerThread:
    """The default server with example.test hosting alice and bob."""
    server.add_user(ALICE)
    server.add_user(BOB)
    return server
