"""The durable outbound queue: records and the interface a backend implements.

A queued message keeps one row per recipient with its own state, so a restart resumes exactly
where delivery stopped: a recipient the remote side accepted is never sent again, a deferred one
is retried, a failed one is reported once.  The SQLite backend (sqlite_queue.py) serves one node;
a PostgreSQL backend can implement the same interface (claiming with ``FOR UPDATE SKIP LOCKED``).

Every mutating call returns only after its effect is committed durably.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class RcptState(StrEnum):
    PENDING = "pending"  # never tried
    DEFERRED = "deferred"  # tried, temporary failure; retried later
    DELIVERED = "delivered"  # accepted by the next hop (or stored locally)
    FAILED = "failed"  # permanent failure, or given up

    @property
    def final(self) -> bool:
        return self in (RcptState.DELIVERED, RcptState.FAILED)


ACTIVE_STATES = (RcptState.PENDING, RcptState.DEFERRED)


@dataclass(frozen=True, slots=True)
class OutboundRecipient:
    """A recipient as the SMTP transaction gave it, with its RFC 3461 parameters."""

    address: str
    notify: frozenset[str] | None = None  # {"NEVER"} or a subset of SUCCESS/FAILURE/DELAY
    orcpt: tuple[str, str] | None = None  # (addr-type, decoded original recipient)


@dataclass(frozen=True, slots=True)
class RecipientRecord:
    id: int
    address: str
    notify: frozenset[str] | None
    orcpt: tuple[str, str] | None
    state: RcptState
    status: str | None  # RFC 3463 enhanced status code of the last result
    diagnostic: str | None  # the remote reply, or the local reason, of the last result
    remote_mta: str | None  # the host that gave the last result (None: local or unreached)
    updated: float | None
    delay_notified: bool  # a "delayed" DSN was sent
    final_notified: bool  # the final DSN was sent, or none is owed

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: str
    sender: str  # "" for the null reverse-path (bounces): never bounced itself
    envid: str | None  # RFC 3461 ENVID, decoded
    ret: str | None  # RFC 3461 RET: "FULL" or "HDRS"
    requiretls: bool  # RFC 8689
    arrival: float
    size: int
    attempts: int
    next_attempt: float
    last_attempt: float | None
    recipients: tuple[RecipientRecord, ...]

    @property
    def active(self) -> list[RecipientRecord]:
        return [r for r in self.recipients if r.state in ACTIVE_STATES]


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The outcome of one delivery attempt for one recipient."""

    recipient_id: int
    state: RcptState
    status: str
    diagnostic: str
    remote_mta: str | None = None
    notified: bool = False  # for DELIVERED: no success DSN is owed (next hop took NOTIFY over)


@dataclass(frozen=True, slots=True)
class Notified:
    """Marks set on recipients together with the DSN reporting them (atomically)."""

    recipient_id: int
    kind: str  # "delay" or "final"


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """An MTA-STS policy as fetched (RFC 8461 §5.1 caching)."""

    domain: str
    policy_id: str
    text: str
    fetched: float
    expires: float


class Queue(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[OutboundRecipient],
        data: bytes,
        *,
        envid: str | None = None,
        ret: str | None = None,
        requiretls: bool = False,
        arrival: float,
        notified: Sequence[Notified] = (),
    ) -> str:
        """Store a message with every recipient pending; durable when it returns.  ``notified``
        marks recipients of other messages in the same commit (a DSN and what it reports)."""

    @abc.abstractmethod
    async def claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        """Take up to ``limit`` due messages for ``lease`` seconds: nobody else claims them
        until the lease ends or ``release`` is called."""

    @abc.abstractmethod
    async def read_data(self, message_id: str) -> bytes: ...

    @abc.abstractmethod
    async def record(self, message_id: str, results: Sequence[RecipientResult], now: float) -> None:
        """Store attempt results.  A recipient already in a final state keeps it (an
        administrator's bounce is not overwritten by a delivery finishing late)."""

    @abc.abstractmethod
    async def release(
        self, message_id: str, next_attempt: float, attempted_at: float | None
    ) -> None:
        """End the lease; the message is due again at ``next_attempt``.  ``attempted_at`` (when
        a delivery was attempted) counts one more attempt."""

    @abc.abstractmethod
    async def mark_notified(self, marks: Sequence[Notified]) -> None:
        """Record that no DSN is owed for these recipients (null sender, NOTIFY=NEVER, ...)."""

    @abc.abstractmethod
    async def remove(self, message_id: str) -> bool:
        """Delete a message and its recipients; False when it does not exist."""

    @abc.abstractmethod
    async def get(self, message_id: str) -> QueuedMessage | None: ...

    @abc.abstractmethod
    async def list(self) -> list[QueuedMessage]:
        """Every queued message, oldest first (administration)."""

    @abc.abstractmethod
    async def next_due(self) -> float | None:
        """The earliest ``next_attempt`` of a message not leased, None when the queue is empty."""

    @abc.abstractmethod
    async def retry(self, message_id: str | None, now: float) -> int:
        """Make one message (or every message) due now; returns how many."""

    @abc.abstractmethod
    async def fail_active(self, message_id: str, status: str, diagnostic: str, now: float) -> int:
        """Turn every pending or deferred recipient of a message into failed (administrator
        bounce) and make it due; returns how many recipients changed."""

    @abc.abstractmethod
    async def recover(self) -> None:
        """Release the leases a crashed worker of this node left behind."""

    @abc.abstractmethod
    async def get_policy(self, domain: str) -> CachedPolicy | None: ...

    @abc.abstractmethod
    async def put_policy(self, policy: CachedPolicy) -> None: ...
