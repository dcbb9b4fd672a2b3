"""POP3 sessions over a Connection: feeds the sans-IO core and performs its I/O events.

The maildrop is the account's INBOX, snapshotted at login; the maildrop lock (``lock``) is
held from login to the end of the session.  Deletions reach the store only in the UPDATE
state, after QUIT (RFC 1939 §6): a connection that drops, times out or is shut down deletes
nothing.  RETR marks a message \\Seen so IMAP clients see it as read (batched, ``seen``), and
reads the next messages ahead (``readahead``).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from postroom.app import App
from postroom.auth.authenticator import AuthOutcome, Challenge, SaslExchange
from postroom.net.connection import Connection
from postroom.pop3.core import (
    Close,
    Event,
    Login,
    Pop3Core,
    Reply,
    Retrieve,
    SaslCancel,
    SaslResponse,
    SaslStart,
    StartTls,
    State,
    Update,
)
from postroom.pop3.lock import locks_for
from postroom.pop3.maildrop import Entry, Maildrop
from postroom.pop3.readahead import BATCH, ReadAhead
from postroom.pop3.seen import SeenMarker
from postroom.store.base import Account, FlagMode, StoreError

# Queued replies are written and drained once they reach this size (flow control on RETR).
DRAIN_AT = 65536


async def handle(app: App, conn: Connection) -> None:
    """Serve one POP3 connection (pop3 with STLS, or pop3s already under TLS)."""
    await Pop3Session(app, conn).run()


class Pop3Session:
    def __init__(self, app: App, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        self.store = app.store
        self.core = Pop3Core(
            app.hostname,
            secure=conn.secure,
            tls_available=not conn.secure,
            mechanisms=app.auth.mechanisms(conn.secure),
            plaintext_allowed=app.auth.plaintext_allowed(conn.secure),
        )
        self.locks = locks_for(app.store)
        self.account: Account | None = None  # set while the maildrop lock is held
        self.mailbox_id = 0
        self.blobs: dict[int, str] = {}  # uid -> blob id, from the snapshot
        self.exchange: SaslExchange | None = None
        self.reader = ReadAhead(app.store)
        self.seen: SeenMarker | None = None  # once logged in
        self.out: list[bytes] = []  # replies not yet written (see _flush)
        self.out_size = 0

    async def run(self) -> None:
        conn, core = self.conn, self.core
        self._queue(core.greeting())
        try:
            while core.state is not State.CLOSED:
                event = core.next_event()
                if event is None:
                    await self._flush()
                    # RFC 1939 §3: on the autologout timer the session just ends (TimeoutError
                    # propagates to the listener), without UPDATE and without a response.
                    core.receive(await conn.read())
                    continue
                await self._perform(event)
            await self._flush()
        finally:
            await self._end()

    def _queue(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

    async def _flush(self) -> None:
        """Send the queued replies in one write: a pipelining client's commands (RFC 2449
        PIPELINING) are answered with one system call per burst, not one per reply."""
        if self.out:
            self.conn.write_nowait(self.out[0] if len(self.out) == 1 else b"".join(self.out))
            self.out.clear()
            self.out_size = 0
        await self.conn.drain()

    async def _send(self, reply: Reply | Close) -> None:
        self._queue(reply.data)
        if isinstance(reply, Close) or self.out_size >= DRAIN_AT:
            await self._flush()

    async def _perform(self, event: Event) -> None:
        core, auth, ip = self.core, self.app.auth, self.conn.peer_ip
        match event:
            case Reply() | Close():
                await self._send(event)
            case StartTls(reply=reply):
                await self._flush()
                self.conn.freeze()
                await self.conn.write(reply)
                await self.conn.start_tls(self.app.tls.context)
                core.tls_started(auth.mechanisms(True), auth.plaintext_allowed(True))
            case Login(username=username, password=password):
                await self._authenticated(await auth.login(username, password, ip))
            case SaslStart(mechanism=mechanism, initial=initial):
                self.exchange = auth.sasl(mechanism, ip, self.conn.secure)
                if self.exchange is None:
                    await self._send(core.login_failed("AUTH", "mechanism not available"))
                else:
                    await self._sasl_step(await self.exchange.step(initial))
            case SaslResponse(data=data):
                assert self.exchange is not None
                await self._sasl_step(await self.exchange.step(data))
            case SaslCancel(reply=reply):
                if self.exchange is not None:
                    self.exchange.cancel()
                    self.exchange = None
                await self._send(Reply(reply))
            case Retrieve():
                await self._retrieve(event)
            case Update(uids=uids):
                await self._update(list(uids))

    # -- authentication --------------------------------------------------------------------
    async def _sasl_step(self, step: Challenge | AuthOutcome) -> None:
        if isinstance(step, Challenge):
            await self._send(self.core.sasl_challenge(step.data))
            return
        self.exchange = None
        await self._authenticated(step)

    async def _authenticated(self, outcome: AuthOutcome) -> None:
        core = self.core
        account = outcome.account
        if account is None:
            # RFC 3206 / RFC 2449 §8: [SYS/TEMP] for throttling and outages, else [AUTH].
            code = "SYS/TEMP" if outcome.temporary else "AUTH"
            await self._send(core.login_failed(code, outcome.reason or "authentication failed"))
            return
        if not self.locks.acquire(account.id):
            self.conn.log("pop3.in_use", user=account.address)
            await self._send(
                core.login_failed("IN-USE", "maildrop is locked by another POP3 session")
            )
            return
        self.account = account
        try:
            maildrop = await self._snapshot(account)
        except (StoreError, OSError) as exc:
            self.conn.log("pop3.snapshot_failed", logging.ERROR, error=repr(exc))
            self._release()
            await self._send(core.login_failed("SYS/TEMP", "maildrop unavailable"))
            return
        self.conn.log("pop3.login", user=account.address, messages=len(maildrop))
        await self._send(core.logged_in(maildrop))

    async def _snapshot(self, account: Account) -> Maildrop:
        """Number the INBOX's messages once for the whole session (RFC 1939 §5)."""
        mailbox = await self.store.get_mailbox(account.id, "INBOX")
        if mailbox is None:
            raise StoreError("account has no INBOX")
        self.mailbox_id = mailbox.id
        self.seen = SeenMarker(self.store, mailbox.id, self._seen_failed)
        entries: list[Entry] = []
        for uid, size, blob_id, flags in await self.store.message_sizes(mailbox.id):
            entries.append(Entry(uid, size, "\\Seen" in flags))
            self.blobs[uid] = blob_id
        return Maildrop(mailbox.uidvalidity, entries)

    def _seen_failed(self, exc: Exception) -> None:
        self.conn.log("pop3.seen_failed", logging.WARNING, error=repr(exc))

    def _release(self) -> None:
        if self.account is not None:
            self.locks.release(self.account.id)
            self.account = None

    # -- transaction -------------------------------------------------------------------------
    async def _retrieve(self, event: Retrieve) -> None:
        upcoming = None
        if event.body_lines is None:
            upcoming = functools.partial(self._upcoming, event.number)
        try:
            data = await self.reader.read(self.blobs[event.uid], upcoming)
        except (StoreError, OSError):
            await self._send(self.core.retrieve_failed())
            return
        await self._send(self.core.retrieved(data))
        if event.mark_seen and self.seen is not None:
            self.seen.mark(event.uid)

    def _upcoming(self, number: int) -> list[tuple[str, int]]:
        """(blob id, size) of the messages after ``number`` that RETR will likely want."""
        drop = self.core.maildrop
        if drop is None:
            return []
        after = (drop.get(n) for n in range(number + 1, number + 1 + BATCH))
        return [(self.blobs[e.uid], e.size) for e in after if e is not None]

    async def _update(self, uids: list[int]) -> None:
        """RFC 1939 §6 UPDATE: remove exactly the messages marked by DELE."""
        if self.seen is not None:
            await self.seen.flush()
        removed: list[int] = []
        ok = True
        if uids:
            try:
                await self.store.store_flags(self.mailbox_id, uids, FlagMode.ADD, ["\\Deleted"])
                removed = await self.store.expunge(self.mailbox_id, uids=uids)
            except (StoreError, OSError) as exc:
                self.conn.log("pop3.update_failed", logging.ERROR, error=repr(exc))
                ok = False
        self.conn.log("pop3.update", deleted=len(removed), ok=ok)
        await self._send(self.core.update_done(ok, len(removed)))

    async def _end(self) -> None:
        """Whatever way the session ends: keep the \\Seen marks, drop the lock."""
        if self.exchange is not None:
            self.exchange.cancel()
        self.reader.close()
        try:
            if self.seen is not None:
                # Shielded: a session cancelled at shutdown still records what it retrieved.
                await asyncio.shield(self.seen.flush())
        finally:
            self._release()
