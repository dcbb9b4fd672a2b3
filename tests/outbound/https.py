"""A tiny HTTPS server on loopback that serves one MTA-STS policy (or a scripted failure)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


class PolicyServer:
    def __init__(self, server: asyncio.AbstractServer) -> None:
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        self.requests = 0

    @classmethod
    async def start(
        cls,
        context: ssl.SSLContext,
        body: str,
        *,
        status: str = "200 OK",
        content_type: str = "text/plain",
    ) -> PolicyServer:
        holder: list[PolicyServer] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                holder[0].requests += 1
                payload = body.encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        holder.append(cls(server))
        return holder[0]

    async def stop(self) -> None:
        self.server.close()
        # Python 3.11's wait_closed also waits for open connections: bound it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 5)
