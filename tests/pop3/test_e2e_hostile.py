"""Hostile input over a real socket: the session answers precisely and stays bounded."""

from __future__ import annotations

import base64
import os

from postroom.pop3.core import MAX_AUTH_FAILURES, MAX_BAD_COMMANDS
from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop


def test_long_line_gets_error_and_session_continues(drop: Drop):
    raw = drop.raw()
    assert raw.command(b"USER " + b"x" * 300).startswith(b"-ERR line too long")
    assert raw.command(b"CAPA").startswith(b"+OK")
    raw.multiline()
    raw.close()


def test_endless_line_is_bounded(drop: Drop):
    raw = drop.raw()
    chunk = b"A" * 65536
    for _ in range(64):  # 4 MiB without a newline
        raw.send(chunk)
    assert raw.command(b"").startswith(b"-ERR line too long")
    assert raw.command(b"QUIT").startswith(b"+OK")
    raw.close()


def test_too_many_bad_commands_disconnect(drop: Drop):
    raw = drop.raw()
    for _ in range(MAX_BAD_COMMANDS - 1):
        assert raw.command(b"XYZZY").startswith(b"-ERR")
    assert b"closing" in raw.command(b"XYZZY")
    assert raw.line() == b""
    raw.close()


def test_too_many_auth_failures_disconnect(server_factory):
    # no throttling delays here: this is the per-connection bound
    drop = Drop(
        server_factory(
            auth={"allow_plaintext": True, "failures_before_delay": 50, "lockout_failures": 50}
        )
    )
    raw = drop.raw()
    for _ in range(MAX_AUTH_FAILURES - 1):
        assert raw.command(f"USER {drop.address}".encode()).startswith(b"+OK")
        assert raw.command(b"PASS wrong").startswith(b"-ERR [AUTH]")
    raw.command(f"USER {drop.address}".encode())
    assert b"closing" in raw.command(b"PASS wrong")
    assert raw.line() == b""
    raw.close()


def test_binary_garbage(drop: Drop):
    drop.put(b"Subject: x\r\n\r\ny\r\n")
    raw = drop.raw()
    garbage = os.urandom(4096).replace(b"\n", b"") + b"\r\n"
    assert raw.command(garbage[:-2]).startswith(b"-ERR")
    assert raw.command(b"\x00\x01\x02").startswith(b"-ERR")
    assert raw.command(f"USER {drop.address}".encode()).startswith(b"+OK")
    assert raw.command(f"PASS {PASSWORD}".encode()).startswith(b"+OK")
    assert raw.command(b"RETR 99999999999999999999").startswith(b"-ERR")
    assert raw.command(b"TOP 1 99999999999999999999").startswith(b"+OK")
    assert raw.multiline() == [b"Subject: x", b"", b"y"]
    assert raw.command(b"QUIT").startswith(b"+OK")
    raw.close()


def test_hostile_sasl(drop: Drop):
    raw = drop.raw()
    assert raw.command(b"AUTH PLAIN ****").startswith(b"-ERR")
    assert raw.command(b"AUTH SCRAM-SHA-256 " + base64.b64encode(os.urandom(64))).startswith(
        b"-ERR"
    )
    assert raw.command(b"AUTH LOGIN").startswith(b"+ ")
    assert raw.command(b"@@@").startswith(b"-ERR")
    assert raw.command(b"AUTH LOGIN").startswith(b"+ ")
    assert raw.command(base64.b64encode(b"x" * 9000)).startswith(b"-ERR")
    assert raw.command(b"QUIT").startswith(b"+OK")
    raw.close()
