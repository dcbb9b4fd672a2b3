"""What every protocol session needs from the running server, in one object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
