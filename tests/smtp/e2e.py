"""Helpers for end-to-end SMTP tests: read a mailbox back from the store, and a raw socket
client for what smtplib cannot send (pipelined batches, BDAT, smuggling probes)."""

from __future__ import annotations

import re
import socket
import ssl

from tests.helpers import ServerThread, client_tls_context

_FINAL = re.compile(rb"^\d{3}(?: [^\r\n]*)?\r\n", re.MULTILINE)


def inbox(srv: ServerThread, address: str) -> list[bytes]:
    """The exact stored bytes of every message in the account's INBOX, in UID order."""

    async def read() -> list[bytes]:
        store = srv.store
        account = await store.get_account(address)
        assert account is not None, address
        mailbox = await store.get_mailbox(account.id, "INBOX")
        messages = await store.fetch(mailbox.id, await store.uids(mailbox.id))
        return [await store.read_blob(m.blob_id) for m in messages]

    return srv.call(read())


def alias(srv: ServerThread, source: str, *targets: str) -> None:
    srv.call(srv.store.add_alias(source, list(targets)))


class RawClient:
    """Line-level SMTP over a socket: ``send`` bytes as they are, ``replies(n)`` waits for n
    complete replies and returns their code lines."""

    def __init__(self, port: int, *, tls: bool = False) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=15
        )
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buffer = b""
        self.greeting = self.replies(1)[0]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, count: int) -> list[str]:
        """The final line ("250 2.0.0 Ok") of each of the next ``count`` replies."""
        out: list[str] = []
        while len(out) < count:
            match = _FINAL.search(self.buffer)
            if match is None:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {out}")
                self.buffer += chunk
                continue
            out.append(match.group().decode().rstrip("\r\n"))
            self.buffer = self.buffer[match.end() :]
        return out

    def codes(self, count: int) -> list[str]:
        return [" ".join(line.split(" ")[:2]) for line in self.replies(count)]

    def command(self, line: bytes) -> str:
        self.send(line + b"\r\n")
        return self.codes(1)[0]

    def starttls(self) -> None:
        assert self.command(b"STARTTLS") == "220 2.0.0"
        assert not self.buffer
        self.sock = client_tls_context().wrap_socket(self.sock)

    def closed(self) -> bool:
        """True once the server has closed the connection (after reading what is left)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (TimeoutError, OSError):
            return False

    def close(self) -> None:
        self.sock.close()
