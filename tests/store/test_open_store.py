"""open_store picks the backend from the settings."""

from __future__ import annotations

import pytest

from postroom import config
from postroom.store import open_store
from postroom.store.base import StoreError
from postroom.store.notifier import InProcessNotifier
from postroom.store.sqlite import SqliteStore


async def test_open_store_sqlite(tmp_path):
    settings = config.from_dict({"data_dir": str(tmp_path / "d"), "limits": {"message_size": 1234}})
    store = open_store(settings)
    assert isinstance(store, SqliteStore)
    assert store.limits.message_size == 1234
    assert isinstance(store.notifier, InProcessNotifier)
    await store.open()
    try:
        assert await store.list_domains() == []
    finally:
        await store.close()


def test_open_store_unknown_backend(tmp_path):
    settings = config.from_dict(
        {"data_dir": str(tmp_path), "store": {"backend": "postgres", "url": "postgresql://x"}}
    )
    with pytest.raises(StoreError):
        open_store(settings)
