"""STLS (RFC 2595) and implicit TLS (pop3s, RFC 8314) end to end."""

from __future__ import annotations

import poplib

import pytest

from tests.helpers import PASSWORD, client_tls_context
from tests.pop3.conftest import Drop


def test_plaintext_login_refused_without_tls(strict_drop: Drop):
    pop = strict_drop.client()
    caps = pop.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop.user(strict_drop.address)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop._shortcmd("AUTH PLAIN")
    pop.quit()


def test_stls_then_login(strict_drop: Drop):
    strict_drop.put(b"Subject: secret\r\n\r\nbody\r\n")
    pop = strict_drop.client()
    assert pop.stls(client_tls_context()).startswith(b"+OK")
    caps = pop.capa()
    assert "STLS" not in caps and "USER" in caps
    assert caps["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    pop.user(strict_drop.address)
    pop.pass_(PASSWORD)
    assert pop.retr(1)[1][0] == b"Subject: secret"
    pop.quit()


def test_stls_twice_refused(strict_drop: Drop):
    pop = strict_drop.client()
    pop.stls(client_tls_context())
    with pytest.raises(poplib.error_proto):
        pop._shortcmd("STLS")
    pop.quit()


def test_stls_discards_pipelined_plaintext(strict_drop: Drop):
    raw = strict_drop.raw()
    raw.send(b"STLS\r\nQUIT\r\n")  # the QUIT must not survive the handshake
    assert raw.line() == b"+OK begin TLS negotiation\r\n"
    raw.starttls()
    assert raw.command(b"CAPA").startswith(b"+OK capability")
    assert b"USER" in raw.multiline()
    assert raw.command(b"QUIT").startswith(b"+OK")
    raw.close()


def test_pop3s(strict_drop: Drop):
    strict_drop.put(b"Subject: over tls\r\n\r\nbody\r\n")
    pop = strict_drop.tls_client()
    caps = pop.capa()
    assert "STLS" not in caps and "USER" in caps
    pop.user(strict_drop.address)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    assert pop.retr(1)[1][0] == b"Subject: over tls"
    pop.quit()


def test_stls_not_in_transaction(drop: Drop):
    pop = drop.login()
    with pytest.raises(poplib.error_proto):
        pop._shortcmd("STLS")
    pop.quit()
