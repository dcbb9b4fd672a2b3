"""Fixtures for the end-to-end POP3 tests: a real server with one account and its INBOX."""

from __future__ import annotations

import poplib
import socket
import ssl

import pytest

from tests.helpers import PASSWORD, ServerThread, client_tls_context

ADDRESS = "pat@example.test"
TIMEOUT = 15


class Drop:
    """An account's maildrop on a running server, with store-side helpers."""

    def __init__(self, srv: ServerThread, address: str = ADDRESS) -> None:
        self.srv = srv
        self.address = address
        self.account = srv.add_user(address)
        self.inbox = srv.call(srv.store.get_mailbox(self.account.id, "INBOX")).id

    def put(self, data: bytes, flags: tuple[str, ...] = ()) -> int:
        return self.srv.call(self.srv.store.append(self.inbox, data, flags)).uid

    def uids(self) -> list[int]:
        return self.srv.call(self.srv.store.uids(self.inbox))

    def flags(self) -> dict[int, frozenset[str]]:
        return {m.uid: m.flags for m in self.srv.call(self.srv.store.message_flags(self.inbox))}

    def uidvalidity(self) -> int:
        return self.srv.call(self.srv.store.get_mailbox_by_id(self.inbox)).uidvalidity

    @property
    def port(self) -> int:
        return self.srv.port("pop3")

    def client(self) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.port, timeout=TIMEOUT)

    def tls_client(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL(
            "127.0.0.1", self.srv.port("pop3s"), timeout=TIMEOUT, context=client_tls_context()
        )

    def login(self) -> poplib.POP3:
        pop = self.client()
        pop.user(self.address)
        pop.pass_(PASSWORD)
        return pop

    def raw(self) -> Raw:
        return Raw(self.port)


class Raw:
    """A bare socket client, for what poplib cannot send (pipelining, hostile input)."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT
        )
        self.buffer = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line with its CRLF; b"" at EOF."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def multiline(self) -> list[bytes]:
        """The lines after a "+OK" status line, up to the terminator."""
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line[:-2])
        return lines

    def command(self, text: bytes) -> bytes:
        self.send(text + b"\r\n")
        return self.line()

    def starttls(self) -> None:
        assert not self.buffer
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def drop(server_factory) -> Drop:
    """A server that allows USER/PASS without TLS (simplest for most tests)."""
    return Drop(server_factory(auth={"allow_plaintext": True}))


@pytest.fixture
def strict_drop(server) -> Drop:
    """A server with the default policy: passwords only under TLS."""
    return Drop(server)
