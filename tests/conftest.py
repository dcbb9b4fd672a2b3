from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import ServerThread, make_settings


@pytest.fixture
def server_defaults() -> dict:
    """Settings every server of a test starts with (a test package may override this)."""
    return {}


@pytest.fixture
def server(tmp_path, server_defaults) -> Iterator[ServerThread]:
    """A running postroom with every service on 127.0.0.1 ephemeral ports, stopped afterwards."""
    with ServerThread(make_settings(tmp_path / "data", **server_defaults)) as srv:
        yield srv


@pytest.fixture
def server_factory(tmp_path, server_defaults) -> Iterator:
    """Start servers with settings overrides: ``server_factory(auth={"allow_plaintext": True})``."""
    started: list[ServerThread] = []

    def start(**overrides) -> ServerThread:
        settings = make_settings(
            tmp_path / f"data{len(started)}", **{**server_defaults, **overrides}
        )
        srv = ServerThread(settings)
        srv.__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.__exit__(None, None, None)
