"""asyncio glue for the SMTP services (smtp, submission, submissions).

Feeds bytes from the connection into the sans-IO core, performs what its events ask (policy
lookups, SASL with the authenticator, delivery into the store, the STARTTLS handshake) and
writes the core's replies.  Replies are written without waiting and flushed once per batch:
when the core needs more input, before a handshake, and before closing (RFC 2920 §3).

Logging: one INFO line per message (delivered or not, with sender and recipients); refusals
at WARNING; the steps of a transaction that went well (HELO, MAIL, RCPT, QUIT) at DEBUG, so a
busy MX does not pay for lines nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable

from postroom.app import App
from postroom.auth.authenticator import AuthOutcome, Challenge, SaslExchange
from postroom.net.connection import Connection
from postroom.smtp import delivery, trace
from postroom.smtp.policy import Policy
from postroom.smtp.reply import AUTH_FAILED, AUTH_TEMPORARY, LOCAL_ERROR, Reply
from postroom.smtp.server import (
    NEED_DATA,
    AuthCancelled,
    AuthResponse,
    AuthStart,
    Event,
    Hello,
    Mail,
    Message,
    Options,
    Quit,
    Rcpt,
    Refused,
    ServerCore,
    StartTLS,
)
from postroom.store.base import Account, StoreError

# Room kept under limits.message_size for the trace fields added at delivery, since the
# store refuses anything larger than limits.message_size.
TRACE_ROOM = 2048


def size_limit(message_size: int) -> int:
    """The SIZE advertised and enforced by SMTP (RFC 1870)."""
    return max(message_size - TRACE_ROOM, message_size // 2)


async def handle(app: App, conn: Connection) -> None:
    """Serve one SMTP connection until QUIT, an error limit, a timeout or the peer leaves."""
    await Session(app, conn).run()


class Session:
    def __init__(self, app: App, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        limits = app.settings.limits
        self.core = ServerCore(
            Options(
                hostname=app.hostname,
                max_size=size_limit(limits.message_size),
                max_recipients=limits.recipients,
                max_data_line=limits.data_line_length,
                max_errors=limits.smtp_error_limit,
                max_junk=limits.smtp_junk_limit,
                secure=conn.secure,
                starttls=not conn.secure,
                auth_required=conn.service != "smtp",  # RFC 6409 §4.3, RFC 8314 §3.3
                mechanisms=tuple(app.auth.mechanisms(conn.secure)),
            )
        )
        self.policy = Policy(app.store, app.hostname, conn.service)
        self.account: Account | None = None
        self.exchange: SaslExchange | None = None
        self._ids = itertools.count(1)

    async def run(self) -> None:
        core, conn = self.core, self.conn
        try:
            while True:
                event = core.next_event()
                if event is NEED_DATA:
                    # Mid-transaction, a graceful stop lets the message finish (Listener.drain).
                    conn.busy = core.transaction is not None
                    if conn.draining and not conn.busy:
                        core.shutting_down()
                        continue
                    await self.flush()
                    try:
                        data = await conn.read()
                    except TimeoutError:  # the client is owed a 421 (RFC 5321 §4.5.3.2.7)
                        conn.log("timeout")
                        core.timed_out()
                        continue
                    core.receive(data)
                elif isinstance(event, Quit):
                    await self.flush()
                    level = logging.DEBUG if event.reason == "quit" else logging.INFO
                    conn.log("quit", level, reason=event.reason)
                    return
                else:
                    await self.dispatch(event)
        except asyncio.CancelledError:  # server shutdown: say so if the socket still works
            core.shutting_down()
            with contextlib.suppress(Exception):
                conn.write_nowait(core.data_to_send())
            raise
        finally:
            if self.exchange is not None:
                self.exchange.cancel()

    async def flush(self) -> None:
        data = self.core.data_to_send()
        if data:
            self.conn.write_nowait(data)
            await self.conn.drain()

    async def dispatch(self, event: Event) -> None:
        conn, core = self.conn, self.core
        if isinstance(event, Hello):
            conn.log("helo", logging.DEBUG, helo=event.name, esmtp=event.extended)
        elif isinstance(event, Refused):
            conn.log(
                "refused", command=event.command, code=event.reply.code, status=event.reply.status
            )
        elif isinstance(event, Mail):
            reply = await self._guard(self.policy.sender(event.sender, self.account))
            conn.log(
                "mail",
                logging.DEBUG if reply.positive else logging.WARNING,
                sender=str(event.sender or ""),
                size=event.params.size,
                code=reply.code,
                status=reply.status,
            )
            core.answer(reply)
        elif isinstance(event, Rcpt):
            size = event.transaction.params.size
            try:
                reply, route = await self.policy.recipient(event.recipient, self.account, size)
            except (StoreError, OSError) as exc:
                conn.log("store error", logging.ERROR, error=repr(exc))
                reply, route = LOCAL_ERROR, None
            level = logging.DEBUG if reply.positive else logging.WARNING
            conn.log("rcpt", level, to=str(event.recipient), code=reply.code, status=reply.status)
            core.answer(reply, route=route)
        elif isinstance(event, Message):
            await self._deliver(event)
        elif isinstance(event, StartTLS):
            await self._starttls()
        elif isinstance(event, AuthStart):
            exchange = self.app.auth.sasl(event.mechanism, conn.peer_ip, conn.secure)
            if exchange is None:
                core.answer(Reply(504, "5.5.4", "Unrecognized authentication type"))
                return
            self.exchange = exchange
            await self._auth_step(event.initial)
        elif isinstance(event, AuthResponse):
            await self._auth_step(event.data)
        elif isinstance(event, AuthCancelled) and self.exchange is not None:
            self.exchange.cancel()
            self.exchange = None
            conn.log("auth cancelled")

    async def _guard(self, decision: Awaitable[Reply]) -> Reply:
        try:
            return await decision
        except (StoreError, OSError) as exc:
            self.conn.log("store error", logging.ERROR, error=repr(exc))
            return LOCAL_ERROR

    async def _deliver(self, event: Message) -> None:
        conn, tx = self.conn, event.transaction
        info = trace.Trace(
            helo=self.core.helo,
            esmtp=self.core.esmtp,
            ip=conn.peer_ip,
            hostname=self.app.hostname,
            tls=conn.tls_info(),
            user=self.account.address if self.account else None,
            id=f"{conn.session_id}.{next(self._ids)}",
        )
        reply = await delivery.deliver(self.app.store, tx, event.data, info, self.app)
        conn.log(
            "delivered" if reply.positive else "not delivered",
            logging.INFO if reply.positive else logging.WARNING,
            id=info.id,
            helo=info.helo,
            sender=str(tx.sender or ""),
            to=",".join(str(r.address) for r in tx.recipients),
            size=len(event.data),
            code=reply.code,
            status=reply.status,
        )
        self.core.answer(reply)

    async def _starttls(self) -> None:
        """RFC 3207 §4.2: the 220 goes out, the handshake runs, and whatever the client sent
        after STARTTLS in plaintext is dropped (by the connection and by the core)."""
        discarded = self.conn.freeze()
        await self.flush()
        await self.conn.start_tls(self.app.tls.context)
        self.core.tls_started(tuple(self.app.auth.mechanisms(True)))
        self.account = None
        self.conn.log("starttls", tls=self.conn.tls_info(), discarded=discarded or None)

    async def _auth_step(self, response: bytes | None) -> None:
        assert self.exchange is not None
        step = await self.exchange.step(response)
        if isinstance(step, Challenge):
            self.core.auth_challenge(step.data)
            return
        assert isinstance(step, AuthOutcome)
        mechanism = self.exchange.mechanism
        self.exchange = None
        if step.account is not None:
            self.account = step.account
            self.core.auth_succeeded(step.account.address)
            self.conn.log("auth ok", mechanism=mechanism, user=step.account.address)
        else:
            self.conn.log(
                "auth failed",
                logging.WARNING,
                mechanism=mechanism,
                temporary=step.temporary,
                reason=step.reason,
            )
            self.core.answer(AUTH_TEMPORARY if step.temporary else AUTH_FAILED)
