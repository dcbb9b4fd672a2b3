"""Accounts, mailboxes and messages behind one interface (see base.Store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.config import Settings
    from postroom.store.base import Store


def open_store(settings: Settings) -> Store:
    """The configured backend, not yet opened (``await store.open()``)."""
    if settings.store.backend == "sqlite":
        from postroom.store.sqlite import SqliteStore

        return SqliteStore(settings.data_path, limits=settings.limits)
    from postroom.store.base import StoreError

    raise StoreError(f"store backend {settings.store.backend!r} is not available in this build")
