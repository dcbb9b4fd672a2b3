"""The delivery worker: claims due messages, delivers them hop by hop, records per-recipient
results, schedules retries and sends delivery status notifications.

Hops: a hosted domain is delivered locally (bounces to local senders); ``[relay] routes`` sends
a domain to a fixed host:port; ``[relay] smarthost`` sends everything else through one relay;
otherwise the recipient domain's MX hosts (RFC 5321 §5.1), with MTA-STS (RFC 8461) deciding
whether TLS must be verified.  Messages to the same hop share connections (up to
``per_destination`` in parallel, ``concurrency`` over all hops).

Results are committed as soon as a transaction ends, before the next one starts, so a crash
at any point resends at most the transaction in flight (RFC 5321 §6.1's duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from postroom import log
from postroom.config import Settings, parse_hostport
from postroom.outbound import local
from postroom.outbound.bounce import ReportedRecipient, build_dsn
from postroom.outbound.client import (
    IMPLICIT,
    NO_TLS,
    OPPORTUNISTIC,
    VERIFY,
    Session,
    SessionError,
    Target,
    Transaction,
)
from postroom.outbound.dkim import Signer
from postroom.outbound.dns import DnsError, Resolver
from postroom.outbound.mtasts import HttpsFetcher, MtaSts
from postroom.outbound.queue import (
    Notified,
    OutboundRecipient,
    Queue,
    QueuedMessage,
    RcptState,
    RecipientRecord,
    RecipientResult,
)
from postroom.outbound.sqlite_queue import SqliteQueue
from postroom.store.base import Store

BATCH = 100  # messages claimed at once
MAX_IN_FLIGHT = 1000  # messages being delivered at once
LEASE = 3600.0  # seconds a claim lasts (a crashed node's claims are released on restart)
POLL = 5.0  # seconds between queue checks when idle (administration from another process)
MIN_PER_CONNECTION = 10  # messages a connection should carry before another one is opened
MAX_ADDRESSES = 5  # addresses tried per delivery (Postfix smtp_mx_address_limit)
CONCURRENCY = 20  # outgoing connections in total
PER_DESTINATION = 4  # outgoing connections per hop


def queue_path(data_dir: Path) -> Path:
    return Path(data_dir) / "queue.sqlite"


class RouteError(Exception):
    """No usable next hop; ``permanent`` when the destination can never be reached."""

    def __init__(self, message: str, *, permanent: bool, status: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True, slots=True)
class Hop:
    kind: str  # "local", "route", "smarthost", "mx"
    target: str  # domain for local/mx, host:port for route/smarthost
    requiretls: bool = False


@dataclass(slots=True)
class _Job:
    """Some recipients of one message for one hop.  The message bytes are read just before
    they are sent, so memory holds one message per connection, not a whole batch."""

    message: QueuedMessage
    recipients: list[RecipientRecord]


class _KeyedLimiter:
    """At most ``limit`` holders per key; keys disappear when unused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[str, list] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.setdefault(key, [asyncio.Semaphore(self.limit), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[key]


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt: first_retry, doubling, capped at max_retry."""
    q = settings.queue
    return min(q.first_retry * 2 ** max(attempts - 1, 0), q.max_retry)


class Outbound:
    """The outbound side of one postroom node: the queue plus its delivery worker.

    ``mx_port``, ``mtasts_port`` and ``trust`` exist for tests and private networks: MX
    delivery goes to port 25 and policies come from port 443 with the system's trust store.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: Queue | None = None,
        *,
        resolver: Resolver | None = None,
        trust: ssl.SSLContext | None = None,
        mx_port: int = 25,
        mtasts_port: int = 443,
        concurrency: int = CONCURRENCY,
        per_destination: int = PER_DESTINATION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue or SqliteQueue(queue_path(settings.data_path))
        self.resolver = resolver or Resolver(settings.dns.nameservers)
        self.trust = trust or ssl.create_default_context()
        self.mx_port = mx_port
        self.signer = Signer(settings.data_path)
        self.mtasts = MtaSts(
            self.resolver,
            self.queue,
            HttpsFetcher(self.resolver, port=mtasts_port, context=self.trust),
        )
        self.clock = clock
        self._connections = asyncio.Semaphore(concurrency)
        self._per_hop = _KeyedLimiter(per_destination)
        self.per_destination = per_destination
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._active: set[str] = set()  # ids being delivered by this worker

    async def open(self) -> None:
        await self.queue.open()
        await self.queue.recover()

    async def close(self) -> None:
        await self.queue.close()

    def wake(self) -> None:
        """New or retried mail: look at the queue now."""
        self._wake.set()

    async def submit(
        self,
        sender: str,
        recipients: Sequence[OutboundRecipient],
        data: bytes,
        *,
        envid: str | None = None,
        ret: str | None = None,
        requiretls: bool = False,
    ) -> str:
        """Queue a message as is (durable when this returns) and wake the worker."""
        queue_id = await self.queue.enqueue(
            sender, recipients, data, envid=envid, ret=ret, requiretls=requiretls,
            arrival=self.clock(),
        )  # fmt: skip
        log.event("queued", id=queue_id, sender=sender or "<>", rcpts=len(recipients),
                  size=len(data))  # fmt: skip
        self.wake()
        return queue_id

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled.  Cancelling stops deliveries in flight; their messages are
        released on the next start (``open`` recovers leases)."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                delay = POLL
                try:
                    if self._in_flight < MAX_IN_FLIGHT:
                        claimed = await self.queue.claim(self.clock(), BATCH, LEASE)
                        # A lease that ran out while its delivery is still going on here is
                        # claimed again: never start a second delivery of the same message.
                        batch = [m for m in claimed if m.id not in self._active]
                        self._active.update(m.id for m in batch)
                        if batch:
                            self._in_flight += len(batch)
                            task = asyncio.create_task(self._process(batch))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                            continue
                        if claimed:
                            await asyncio.sleep(0.5)  # only long deliveries are due: let them run
                            continue
                        due = await self.queue.next_due()
                        if due is not None:
                            delay = min(POLL, max(due - self.clock(), 0.01))
                except Exception as exc:  # the queue database is unwell: try again later
                    log.event("queue error", error=f"{type(exc).__name__}: {exc}")
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that arrives as the wake-up does, and the worker would not stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _process(self, messages: list[QueuedMessage]) -> None:
        try:
            now = self.clock()
            local_domains: dict[str, bool] = {}
            by_hop: dict[Hop, list[_Job]] = defaultdict(list)
            attempted: set[str] = set()
            for m in messages:
                if now - m.arrival >= self.settings.queue.give_up_after:
                    continue  # expired: _finalize fails what is left
                groups: dict[Hop, list[RecipientRecord]] = defaultdict(list)
                for r in m.active:
                    groups[await self._hop(r.domain, m.requiretls, local_domains)].append(r)
                for hop, rcpts in groups.items():
                    by_hop[hop].append(_Job(m, rcpts))
                    attempted.add(m.id)
            await asyncio.gather(*(self._deliver_hop(h, jobs) for h, jobs in by_hop.items()))
            for m in messages:
                await self._finalize(m.id, attempted=m.id in attempted)
        except Exception as exc:  # a bug must not stop the worker: retry these later
            log.event("delivery error", error=f"{type(exc).__name__}: {exc}")
            for m in messages:
                with contextlib.suppress(Exception):
                    await self.queue.release(
                        m.id, self.clock() + backoff(self.settings, m.attempts + 1), self.clock()
                    )
        finally:
            self._in_flight -= len(messages)
            self._active.difference_update(m.id for m in messages)
            self.wake()

    async def _hop(self, domain: str, requiretls: bool, local_domains: dict[str, bool]) -> Hop:
        if domain not in local_domains:
            local_domains[domain] = await self.store.has_domain(domain)
        if local_domains[domain]:
            return Hop("local", domain)
        routes = {d.lower(): t for d, t in self.settings.relay.routes.items()}
        if domain in routes:
            return Hop("route", routes[domain], requiretls)
        if self.settings.relay.smarthost:
            return Hop("smarthost", self.settings.relay.smarthost, requiretls)
        return Hop("mx", domain, requiretls)

    # -- delivery ------------------------------------------------------------------------------

    async def _deliver_hop(self, hop: Hop, jobs: list[_Job]) -> None:
        if hop.kind == "local":
            for job in jobs:
                data = await self._data(job)
                if data is not None:
                    results = await local.deliver(
                        self.store, job.message.sender, job.recipients, data, self.settings.hostname
                    )
                    await self._record(job, results, None)
            return
        n = max(1, min(self.per_destination, math.ceil(len(jobs) / MIN_PER_CONNECTION)))
        await asyncio.gather(*(self._deliver_chunk(hop, jobs[i::n]) for i in range(n)))

    async def _deliver_chunk(self, hop: Hop, jobs: list[_Job]) -> None:
        async with self._per_hop.hold(f"{hop.kind}:{hop.target}"), self._connections:
            session: Session | None = None
            error: RouteError | SessionError | None = None
            tried = 0
            try:
                async for target in self._targets(hop):
                    tried += 1
                    try:
                        session = await Session.open(
                            target, self.settings.hostname, trust=self.trust
                        )
                        break
                    except SessionError as exc:
                        log.event("connect failed", hop=hop.target, error=str(exc))
                        error = exc
                    if tried >= MAX_ADDRESSES:
                        break
            except RouteError as exc:
                error = exc
            if session is None:
                error = error or RouteError(
                    "no host to deliver to", permanent=False, status="4.4.4"
                )
                permanent = isinstance(error, RouteError) and error.permanent
                status = error.status
                if hop.requiretls and status == "4.7.4":
                    # RFC 8689 §4.2.1: no TLS on offer, the message must not go in clear.
                    permanent, status = True, "5.7.30"
                state = RcptState.FAILED if permanent else RcptState.DEFERRED
                for job in jobs:
                    results = [
                        RecipientResult(r.id, state, status, str(error)) for r in job.recipients
                    ]
                    await self._record(job, results, None)
                return
            try:
                for i, job in enumerate(jobs):
                    data = await self._data(job)
                    if data is None:
                        continue
                    try:
                        results = await session.send(
                            Transaction(
                                job.message.sender,
                                job.recipients,
                                data,
                                job.message.envid,
                                job.message.ret,
                                job.message.requiretls,
                            )
                        )
                    except SessionError as exc:
                        for rest in jobs[i:]:
                            await self._record(
                                rest,
                                [
                                    RecipientResult(r.id, RcptState.DEFERRED, exc.status, str(exc),
                                                    session.target.name)
                                    for r in rest.recipients
                                ],
                                session,
                            )  # fmt: skip
                        return
                    await self._record(job, results, session)
            finally:
                await session.close()

    async def _data(self, job: _Job) -> bytes | None:
        """The message bytes; None when an administrator deleted the message meanwhile."""
        try:
            return await self.queue.read_data(job.message.id)
        except KeyError:
            return None

    async def _targets(self, hop: Hop) -> AsyncIterator[Target]:
        """Hosts to try in order.  Raises RouteError when there is none at all."""
        relay = self.settings.relay
        if hop.kind in ("route", "smarthost"):
            host, port = parse_hostport(hop.target, f"relay.{hop.kind}")
            auth = None
            tls = VERIFY if hop.requiretls else OPPORTUNISTIC
            if hop.kind == "smarthost":
                tls = {"starttls": VERIFY, "implicit": IMPLICIT, "none": NO_TLS}[
                    relay.smarthost_tls
                ]
                if relay.smarthost_user:
                    auth = (relay.smarthost_user, relay.smarthost_password or "")
            if tls == IMPLICIT:
                yield Target(host, host, port, tls, auth)
                return
            try:
                addresses = await self.resolver.addresses(host)
            except DnsError as exc:
                raise RouteError(str(exc), permanent=False, status=exc.status) from None
            for address in addresses:
                yield Target(host, address, port, tls, auth)
            return

        domain = hop.target
        try:
            hosts = await self.resolver.mx(domain)
        except DnsError as exc:
            raise RouteError(str(exc), permanent=exc.permanent, status=exc.status) from None
        policy = await self.mtasts.policy(domain)
        enforce = policy is not None and policy.mode == "enforce"
        if enforce:
            assert policy is not None
            allowed = [h for h in hosts if policy.allows(h.name)]
            if not allowed:
                raise RouteError(
                    f"{domain}: no MX host matches its MTA-STS policy", permanent=False,
                    status="4.7.5",
                )  # fmt: skip
            hosts = allowed
        elif hop.requiretls:
            # RFC 8689 §4.2.1: the MX must be authenticated (DNSSEC or MTA-STS).
            raise RouteError(
                f"{domain}: REQUIRETLS needs an MTA-STS policy in enforce mode",
                permanent=True, status="5.7.30",
            )  # fmt: skip
        tls = VERIFY if enforce or hop.requiretls else OPPORTUNISTIC
        last: DnsError | None = None
        found = False
        for host in hosts:
            if host.name == self.settings.hostname.lower():
                raise RouteError(
                    f"{domain}: MX {host.name} is this server: mail loops back to myself",
                    permanent=True, status="5.4.6",
                )  # fmt: skip
            try:
                addresses = await self.resolver.addresses(host.name)
            except DnsError as exc:
                last = exc
                continue
            for address in addresses:
                found = True
                yield Target(host.name, address, self.mx_port, tls)
        if not found:
            raise RouteError(
                str(last) if last else f"{domain}: no MX host has an address",
                permanent=False, status=last.status if last else "4.4.4",
            )  # fmt: skip

    async def _record(
        self, job: _Job, results: list[RecipientResult], session: Session | None
    ) -> None:
        await self.queue.record(job.message.id, results, self.clock())
        addresses = {r.id: r.address for r in job.recipients}
        for res in results:
            log.event(
                res.state.value,
                id=job.message.id,
                to=addresses.get(res.recipient_id),
                relay=res.remote_mta,
                tls=session.tls if session else None,
                status=res.status,
                reply=res.diagnostic,
            )

    # -- after an attempt ------------------------------------------------------------------------

    async def _finalize(self, message_id: str, attempted: bool) -> None:
        """Give up on expired recipients, send the DSNs that are owed, then delete the message
        (nothing left to do) or schedule its next attempt."""
        m = await self.queue.get(message_id)
        if m is None:
            return
        now = self.clock()
        q = self.settings.queue
        if m.active and now - m.arrival >= q.give_up_after:
            days = q.give_up_after / 86400
            await self.queue.record(
                m.id,
                [
                    RecipientResult(
                        r.id,
                        RcptState.FAILED,
                        r.status if r.status and r.status[0] == "4" else "4.4.7",
                        f"gave up after {days:g} days: {r.diagnostic or 'not delivered'}",
                        r.remote_mta,
                    )
                    for r in m.active
                ],
                now,
            )
            m = await self.queue.get(message_id)
            if m is None:
                return
        await self._notify(m, now)
        if not m.active:
            await self.queue.remove(m.id)
            log.event("removed", id=m.id)
            return
        attempts = m.attempts + (1 if attempted else 0)
        next_attempt = min(now + backoff(self.settings, attempts), m.arrival + q.give_up_after)
        await self.queue.release(m.id, next_attempt, now if attempted else None)

    async def _notify(self, m: QueuedMessage, now: float) -> None:
        """RFC 3461 §6.2: one report for whatever the sender should hear about now."""
        q = self.settings.queue
        reports: list[ReportedRecipient] = []
        marks: list[Notified] = []
        for r in m.recipients:
            notify = r.notify
            if r.state is RcptState.FAILED and not r.final_notified:
                marks.append(Notified(r.id, "final"))
                if notify is None or "FAILURE" in notify:
                    reports.append(self._reported(r, "failed", m))
            elif r.state is RcptState.DELIVERED and not r.final_notified:
                marks.append(Notified(r.id, "final"))
                reports.append(self._reported(r, "relayed" if r.remote_mta else "delivered", m))
            elif (
                r.state is RcptState.DEFERRED
                and not r.delay_notified
                and q.delay_warning_after > 0
                and now - m.arrival >= q.delay_warning_after
                and (notify is None or "DELAY" in notify)
            ):
                marks.append(Notified(r.id, "delay"))
                reports.append(
                    self._reported(r, "delayed", m, will_retry_until=m.arrival + q.give_up_after)
                )
        if not marks:
            return
        if not reports or m.sender == "":  # RFC 5321 §4.5.5: never a report about a report
            await self.queue.mark_notified(marks)
            return
        data = await self.queue.read_data(m.id)
        full = m.ret == "FULL" and not m.requiretls and all(r.action == "failed" for r in reports)
        dsn = build_dsn(
            reporting_mta=self.settings.hostname,
            sender=m.sender,
            queue_id=m.id,
            envid=m.envid,
            arrival=m.arrival,
            recipients=reports,
            original=data,
            full=full,
            now=now,
        )
        if self.signer.has_key(self.settings.hostname):
            dsn = await asyncio.to_thread(self.signer.sign, dsn, self.settings.hostname)
        dsn_id = await self.queue.enqueue(
            "", [OutboundRecipient(m.sender, frozenset({"NEVER"}))], dsn,
            requiretls=m.requiretls, arrival=now, notified=marks,
        )  # fmt: skip
        log.event("dsn queued", id=dsn_id, about=m.id, to=m.sender,
                  actions=",".join(sorted({r.action for r in reports})))  # fmt: skip
        self.wake()

    @staticmethod
    def _reported(
        r: RecipientRecord, action: str, m: QueuedMessage, will_retry_until: float | None = None
    ) -> ReportedRecipient:
        return ReportedRecipient(
            address=r.address,
            action=action,
            status=r.status or ("2.0.0" if action in ("delivered", "relayed") else "4.0.0"),
            orcpt=r.orcpt,
            remote_mta=r.remote_mta,
            diagnostic=r.diagnostic,
            last_attempt=r.updated,
            will_retry_until=will_retry_until,
        )
