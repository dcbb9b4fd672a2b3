"""A minimal line-level IMAP client for tests that must see exact responses (untagged order,
response codes, continuation requests), where imaplib/imapclient would hide them."""

from __future__ import annotations

import contextlib
import re
import socket

from tests.helpers import client_tls_context

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Raw:
    def __init__(self, port: int, tls: bool = True, timeout: float = 10) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            sock = client_tls_context().wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def starttls(self) -> None:
        self.sock = client_tls_context().wrap_socket(self.sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line; a literal it announces is appended with its bytes."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        line += b"\r\n"
        m = _LITERAL.search(line)
        if m:
            need = int(m.group(1))
            while len(self.buf) < need:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buf += chunk
            line += self.buf[:need]
            self.buf = self.buf[need:]
            line += self.line()
        return line

    def cmd(self, text: str | bytes) -> list[bytes]:
        """Send a tagged command; return every line up to and including the tagged one."""
        self.n += 1
        tag = b"t%d" % self.n
        data = text.encode() if isinstance(text, str) else text
        self.send(tag + b" " + data + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    def login(self, user: str, password: str) -> list[bytes]:
        return self.cmd(f'LOGIN "{user}" "{password}"')

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def tagged(lines: list[bytes]) -> bytes:
    return lines[-1]


def untagged(lines: list[bytes], word: bytes | None = None) -> list[bytes]:
    out = [ln for ln in lines if ln.startswith(b"* ")]
    if word is not None:
        out = [ln for ln in out if word in ln.split(b" ", 3)[1:3]]
    return out


def status(lines: list[bytes]) -> bytes:
    """OK, NO or BAD of the tagged response."""
    return lines[-1].split(b" ")[1]
