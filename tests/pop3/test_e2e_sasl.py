"""RFC 5034 AUTH end to end: PLAIN (with and without initial response), LOGIN, SCRAM-SHA-256,
cancellation, failures."""

from __future__ import annotations

import base64
import poplib

import pytest

from tests.auth.scram_client import ScramClient
from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def challenge(resp: bytes) -> bytes:
    assert resp.startswith(b"+ "), resp
    return base64.b64decode(resp[2:])


def plain(drop: Drop, password: str = PASSWORD) -> str:
    return b64(f"\0{drop.address}\0{password}".encode())


def test_auth_plain_initial_response(drop: Drop):
    drop.put(b"Subject: x\r\n\r\ny\r\n")
    pop = drop.client()
    assert pop._shortcmd(f"AUTH PLAIN {plain(drop)}").startswith(b"+OK")
    assert pop.stat()[0] == 1
    pop.quit()


def test_auth_plain_without_initial_response(drop: Drop):
    pop = drop.client()
    assert challenge(pop._shortcmd("AUTH PLAIN")) == b""
    assert pop._shortcmd(plain(drop)).startswith(b"+OK")
    pop.quit()


def test_auth_login(drop: Drop):
    pop = drop.client()
    challenge(pop._shortcmd("AUTH LOGIN"))
    challenge(pop._shortcmd(b64(drop.address.encode())))
    assert pop._shortcmd(b64(PASSWORD.encode())).startswith(b"+OK")
    pop.quit()


def test_auth_scram_sha_256(drop: Drop):
    client = ScramClient(drop.address, PASSWORD)
    pop = drop.client()
    server_first = challenge(pop._shortcmd(f"AUTH SCRAM-SHA-256 {b64(client.first())}"))
    server_final = challenge(pop._shortcmd(b64(client.final(server_first))))
    assert client.verify(server_final)
    assert pop._shortcmd("").startswith(b"+OK")
    assert pop.stat() == (0, 0)
    pop.quit()


def test_auth_scram_wrong_password(drop: Drop):
    client = ScramClient(drop.address, "not the password")
    pop = drop.client()
    server_first = challenge(pop._shortcmd(f"AUTH SCRAM-SHA-256 {b64(client.first())}"))
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop._shortcmd(b64(client.final(server_first)))
    pop.quit()


def test_auth_plain_wrong_password(drop: Drop):
    pop = drop.client()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop._shortcmd(f"AUTH PLAIN {plain(drop, 'wrong')}")
    assert pop._shortcmd(f"AUTH PLAIN {plain(drop)}").startswith(b"+OK")
    pop.quit()


def test_auth_cancel(drop: Drop):
    pop = drop.client()
    challenge(pop._shortcmd("AUTH LOGIN"))
    with pytest.raises(poplib.error_proto, match="cancelled"):
        pop._shortcmd("*")
    assert pop._shortcmd(f"AUTH PLAIN {plain(drop)}").startswith(b"+OK")
    pop.quit()


def test_auth_mechanism_list_and_unknown(drop: Drop):
    pop = drop.client()
    resp, mechanisms, _ = pop._longcmd("AUTH")
    assert resp.startswith(b"+OK") and mechanisms == [b"PLAIN", b"LOGIN", b"SCRAM-SHA-256"]
    with pytest.raises(poplib.error_proto):
        pop._shortcmd("AUTH CRAM-MD5")
    pop.quit()


def test_throttled_login_gets_sys_temp(server_factory):
    drop = Drop(
        server_factory(
            auth={"allow_plaintext": True, "lockout_failures": 2, "failures_before_delay": 10}
        )
    )
    pop = drop.client()
    for _ in range(2):
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            pop._shortcmd(f"AUTH PLAIN {plain(drop, 'wrong')}")
    # locked now: even the right password gets a temporary error
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        pop._shortcmd(f"AUTH PLAIN {plain(drop)}")
    pop.close()
