"""Not-authenticated state over real sockets: greeting, CAPABILITY, STARTTLS, LOGIN refused
without TLS, AUTHENTICATE PLAIN/LOGIN/SCRAM-SHA-256 with SASL-IR, bounds before login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import imaplib
import os
import socket

import pytest

from tests.helpers import PASSWORD, client_tls_context
from tests.imap.conftest import USER
from tests.imap.raw import Raw, status, tagged, untagged


def test_greeting_has_capability_and_logindisabled_on_plaintext(srv):
    raw = Raw(srv.port("imap"), tls=False)
    assert raw.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    assert b"STARTTLS" in raw.greeting and b"LOGINDISABLED" in raw.greeting
    assert b"AUTH=PLAIN" not in raw.greeting
    out = raw.login(USER, PASSWORD)
    assert tagged(out).startswith(b"t1 NO [PRIVACYREQUIRED]")
    out = raw.cmd(
        "AUTHENTICATE PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    )
    assert b" NO " in tagged(out)
    raw.close()


def test_starttls_then_login(srv):
    client = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    client.starttls(client_tls_context())
    assert "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" not in client.capabilities
    typ, data = client.login(USER, PASSWORD)
    assert typ == "OK" and b"[CAPABILITY " in data[0]
    client.logout()


def test_starttls_drops_pipelined_commands(srv):
    raw = Raw(srv.port("imap"), tls=False)
    raw.send(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert raw.line().startswith(b"a OK")
    raw.buf = b""
    raw.starttls()
    out = raw.cmd("NOOP")
    assert out == [b"t1 OK NOOP completed\r\n"]  # "b LOGIN" was never executed
    raw.close()


def test_login_allowed_without_tls_when_configured(server_factory):
    srv = server_factory(auth={"allow_plaintext": True})
    srv.add_user(USER)
    client = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    assert "LOGINDISABLED" not in client.capabilities
    assert client.login(USER, PASSWORD)[0] == "OK"
    client.logout()


def test_login_failure_and_capability_after_login(connect):
    raw = connect(login=False)
    out = raw.login(USER, "wrong")
    assert tagged(out).startswith(b"t1 NO [AUTHENTICATIONFAILED]")
    out = raw.login(USER, PASSWORD)
    assert b"[CAPABILITY " in tagged(out) and b"LITERAL+" in tagged(out)
    caps = untagged(raw.cmd("CAPABILITY"))[0]
    for cap in (
        b"IDLE",
        b"UIDPLUS",
        b"MOVE",
        b"CONDSTORE",
        b"QRESYNC",
        b"ESEARCH",
        b"SEARCHRES",
        b"LIST-STATUS",
        b"SPECIAL-USE",
        b"NAMESPACE",
        b"UNSELECT",
        b"ENABLE",
        b"ID",
    ):
        assert b" " + cap + b" " in caps or caps.endswith(b" " + cap + b"\r\n")


def test_authenticate_plain_sasl_ir_and_continuation(srv):
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    raw = Raw(srv.port("imaps"))
    assert tagged(raw.cmd(b"AUTHENTICATE PLAIN " + token)).startswith(b"t1 OK")
    raw.close()
    raw = Raw(srv.port("imaps"))
    raw.send(b"a AUTHENTICATE PLAIN\r\n")
    assert raw.line().startswith(b"+")
    raw.send(token + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.close()


def test_authenticate_login_and_cancel(srv):
    raw = Raw(srv.port("imaps"))
    raw.send(b"a AUTHENTICATE LOGIN\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.close()
    raw = Raw(srv.port("imaps"))
    raw.send(b"b AUTHENTICATE LOGIN\r\n")
    raw.line()
    raw.send(b"*\r\n")
    assert raw.until(b"b")[-1].startswith(b"b BAD")
    raw.close()


def _scram_client(raw: Raw) -> bytes:
    """RFC 5802 / RFC 7677 client side, enough to log in."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={USER},r={nonce}"
    raw.send(
        b"a AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(f"n,,{first_bare}".encode()) + b"\r\n"
    )
    server_first = base64.b64decode(raw.line()[2:].strip()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", PASSWORD.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(stored, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{final_bare},p={base64.b64encode(proof).decode()}"
    raw.send(base64.b64encode(final.encode()) + b"\r\n")
    server_final = raw.line()
    assert server_final.startswith(b"+ ")
    raw.send(b"\r\n")
    return raw.until(b"a")[-1]


def test_authenticate_scram_sha_256(srv):
    raw = Raw(srv.port("imaps"))
    assert _scram_client(raw).startswith(b"a OK")
    raw.close()


def test_unknown_mechanism(connect):
    raw = connect(login=False)
    assert b" NO " in tagged(raw.cmd("AUTHENTICATE X-BOGUS"))


def test_pre_auth_literal_bounds(srv):
    raw = Raw(srv.port("imaps"))
    # a synchronising literal over 8 KiB is refused without a continuation request
    raw.send(b"a LOGIN {9000}\r\n")
    assert raw.line().startswith(b"a BAD [TOOBIG]")
    assert tagged(raw.cmd("NOOP")).startswith(b"t1 OK")
    # a non-synchronising one over LITERAL-'s 4096 closes the connection: its bytes are
    # never read as commands
    raw.send(b"b LOGIN {5000+}\r\n" + b"c LOGOUT\r\n" * 10)
    assert raw.line().startswith(b"b BAD [TOOBIG]")
    assert raw.line().startswith(b"* BYE")
    with pytest.raises((ConnectionError, OSError)):
        raw.line()
    raw.close()


def test_pre_auth_long_line(srv):
    raw = Raw(srv.port("imaps"))
    raw.send(b"a LOGIN " + b"x" * 9000)
    assert raw.line().startswith(b"a BAD [TOOBIG]")
    raw.close()


def test_malformed_commands_get_bad_and_session_continues(connect):
    raw = connect()
    assert status(raw.cmd("FROB")) == b"BAD"
    raw.send(b"\r\n")
    assert raw.line().startswith(b"* BAD")
    assert status(raw.cmd('SELECT "a\\x"')) == b"BAD"
    assert status(raw.cmd("NOOP")) == b"OK"


def test_id_namespace_enable_logout(connect):
    raw = connect()
    out = raw.cmd('ID ("name" "test")')
    assert untagged(out)[0].startswith(b'* ID ("name" "postroom"')
    assert untagged(raw.cmd("NAMESPACE"))[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    out = raw.cmd("ENABLE CONDSTORE IMAP4rev2 X-UNKNOWN")
    assert untagged(out)[0] == b"* ENABLED CONDSTORE IMAP4rev2\r\n"
    out = raw.cmd("LOGOUT")
    assert out[0].startswith(b"* BYE") and status(out) == b"OK"


def test_idle_timeout_socket_closed_cleanly(srv):
    sock = socket.create_connection(("127.0.0.1", srv.port("imap")))
    assert sock.recv(100).startswith(b"* OK")
    sock.close()
