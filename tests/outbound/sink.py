"""An SMTP sink (aiosmtpd) on loopback that records what it receives and answers RCPT and
DATA with scripted replies."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, AuthResult


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    mail_options: list[str]
    rcpt_options: list[list[str]]
    auth: str | None


@dataclass
class Sink:
    rcpt_replies: list[str] = field(default_factory=list)  # consumed one per RCPT
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    active: int = 0
    max_active: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.pop(0) if self.rcpt_replies else "250 2.1.5 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.append(list(rcpt_options))
        return reply

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 queued"
        if reply.startswith("250"):
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content or envelope.content,
                    session.ssl is not None,
                    list(envelope.mail_options),
                    list(envelope.rcpt_options),
                    session.auth_data if isinstance(session.auth_data, str) else None,
                )
            )
            self.arrived.set()
        return reply


class SinkServer:
    """``await SinkServer.start(tls=ctx)``; ``.port``; ``await .stop()``."""

    def __init__(self, sink: Sink, server: asyncio.AbstractServer) -> None:
        self.sink = sink
        self.server = server
        self.port = server.sockets[0].getsockname()[1]

    @classmethod
    async def start(
        cls,
        sink: Sink | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        implicit: bool = False,
    ) -> SinkServer:
        sink = sink or Sink()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                auth is not None and (auth_data.login.decode(), auth_data.password.decode()) == auth
            )
            return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

        class Counted(SMTP):
            def connection_made(self, transport):
                sink.connections += 1
                sink.active += 1
                sink.max_active = max(sink.max_active, sink.active)
                super().connection_made(transport)

            def connection_lost(self, exc):
                sink.active -= 1
                super().connection_lost(exc)

        def factory() -> SMTP:
            return Counted(
                sink,
                hostname="sink.remote.test",
                enable_SMTPUTF8=True,
                tls_context=None if implicit else tls,
                auth_required=auth is not None,
                auth_require_tls=True,
                authenticator=authenticator if auth is not None else None,
            )

        server = await asyncio.get_running_loop().create_server(
            factory, "127.0.0.1", 0, ssl=tls if implicit else None
        )
        return cls(sink, server)

    async def stop(self) -> None:
        self.server.close()
        # Python 3.11's wait_closed also waits for open connections: bound it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 5)
