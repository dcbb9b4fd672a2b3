"""Timers without long waits: the IDLE heartbeat (``* OK Still here``, RFC 2177 keepalive for
NAT-ed clients) and the autologout timers (RFC 9051 §5.4) are module constants / the
server's per-family idle timeouts, shortened here by monkeypatching."""

from __future__ import annotations

import pytest

from postroom.imap import session
from tests.helpers import PASSWORD
from tests.imap.conftest import USER
from tests.imap.raw import Raw, status


def test_idle_heartbeat(monkeypatch, connect):
    monkeypatch.setattr(session, "IDLE_HEARTBEAT", 0.1)
    raw = connect()
    raw.cmd("SELECT INBOX")
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    for _ in range(3):
        assert raw.line() == b"* OK Still here\r\n"
    raw.send(b"DONE\r\n")
    assert raw.until(b"i")[-1] == b"i OK IDLE terminated\r\n"


@pytest.fixture
def short_timeouts(monkeypatch, server_factory):
    """A server whose IMAP sessions are logged out after 0.5 s without input."""
    monkeypatch.setattr(session, "PRE_AUTH_TIMEOUT", 0.5)
    monkeypatch.setattr(session, "IDLE_HEARTBEAT", 60.0)
    srv = server_factory(limits={"imap_timeout": 0.5})
    srv.add_user(USER)
    return srv


def _closed(raw: Raw) -> bool:
    try:
        raw.line()
    except (ConnectionError, OSError):
        return True
    return False


def test_autologout_before_login(short_timeouts):
    raw = Raw(short_timeouts.port("imaps"))
    assert raw.line() == b"* BYE Autologout; idle for too long\r\n"
    assert _closed(raw)


def test_autologout_after_login(short_timeouts):
    raw = Raw(short_timeouts.port("imaps"))
    assert status(raw.login(USER, PASSWORD)) == b"OK"
    assert raw.line() == b"* BYE Autologout; idle for too long\r\n"
    assert _closed(raw)


def test_autologout_during_idle(short_timeouts):
    raw = Raw(short_timeouts.port("imaps"))
    assert status(raw.login(USER, PASSWORD)) == b"OK"
    raw.cmd("SELECT INBOX")
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")
    assert raw.line() == b"* BYE Autologout; idle for too long\r\n"
    assert _closed(raw)
