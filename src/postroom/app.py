"""What every protocol session needs from the running server, in one object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from postroom.config import Settings
from postroom.net.tls import TLSManager
from postroom.store.base import Store

if TYPE_CHECKING:
    from postroom.auth.authenticator import Authenticator
    from postroom.outbound.worker import Outbound


@dataclass
class App:
    settings: Settings
    store: Store
    auth: Authenticator
    tls: TLSManager
    outbound: Outbound | None = None  # the queue for mail to other domains

    @property
    def hostname(self) -> str:
        return self.settings.hostname

    async def enqueue(self, sender: str, recipients: list[Any], data: bytes, **options: Any) -> str:
        """Queue a message for remote recipients (``outbound.submit.enqueue``); an SMTP worker
        process's App forwards this to the server process."""
        from postroom.outbound.submit import enqueue
        from postroom.store.base import StoreError

        if self.outbound is None:
            raise StoreError("no outbound queue")
        return await enqueue(self, sender, recipients, data, **options)
