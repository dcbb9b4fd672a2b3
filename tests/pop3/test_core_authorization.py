"""The AUTHORIZATION state of the core: CAPA, USER/PASS, APOP, AUTH, STLS, UTF8, QUIT."""

from __future__ import annotations

import base64

import pytest

from postroom.pop3.core import (
    MAX_AUTH_FAILURES,
    Close,
    Login,
    Reply,
    SaslCancel,
    SaslResponse,
    SaslStart,
    StartTls,
    State,
)
from postroom.pop3.maildrop import Maildrop
from tests.pop3.util import events, make_core, one, reply


def capa(core) -> list[str]:
    data = reply(core, b"CAPA\r\n")
    lines = data.decode().split("\r\n")
    assert lines[0].startswith("+OK") and lines[-2:] == [".", ""]
    return lines[1:-2]


def test_greeting_has_no_apop_timestamp():
    greeting = make_core().greeting()
    assert greeting.startswith(b"+OK ") and greeting.endswith(b"\r\n")
    assert b"<" not in greeting  # RFC 1939 §7: a timestamp would announce APOP


def test_capa_plaintext_connection_with_plaintext_allowed():
    caps = capa(make_core())
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in caps
    assert "SASL PLAIN LOGIN SCRAM-SHA-256" in caps
    assert "EXPIRE NEVER" in caps and "IMPLEMENTATION postroom" in caps
    assert "STLS" in caps and "UTF8 USER" in caps


def test_capa_plaintext_refused_hides_user_and_sasl():
    caps = capa(make_core(plaintext=False))
    assert "USER" not in caps and not any(c.startswith("SASL") for c in caps)
    assert "STLS" in caps and "UTF8" in caps


def test_capa_under_tls_has_no_stls():
    caps = capa(make_core(secure=True))
    assert "STLS" not in caps and "USER" in caps


def test_capa_rejects_argument():
    assert reply(make_core(), b"CAPA x\r\n").startswith(b"-ERR")


def test_user_pass_gives_login_event_with_spaces_in_password():
    core = make_core()
    assert reply(core, b"USER bob@example.test\r\n").startswith(b"+OK")
    event = one(core, b"PASS two words \r\n")
    assert event == Login("bob@example.test", "two words ")
    # nothing more until the session completes the login
    assert events(core, b"STAT\r\n") == []
    answer = core.logged_in(Maildrop(1, []))
    assert answer.data == b"+OK maildrop has 0 messages (0 octets)\r\n"
    assert reply(core, b"") == b"+OK 0 0\r\n"


def test_utf8_username_and_password():
    core = make_core()
    reply(core, "USER jörg@example.test\r\n".encode())
    assert one(core, "PASS pässwörd\r\n".encode()) == Login("jörg@example.test", "pässwörd")


def test_pass_without_user():
    assert reply(make_core(), b"PASS x\r\n").startswith(b"-ERR")


def test_user_refused_without_tls_when_plaintext_not_allowed():
    core = make_core(plaintext=False)
    assert reply(core, b"USER bob\r\n").startswith(b"-ERR [AUTH]")
    assert reply(core, b"PASS x\r\n").startswith(b"-ERR")


def test_login_failed_codes_and_retry():
    core = make_core()
    reply(core, b"USER bob\r\n")
    one(core, b"PASS wrong\r\n")
    assert core.login_failed("AUTH", "invalid credentials") == Reply(
        b"-ERR [AUTH] invalid credentials\r\n"
    )
    assert core.state is State.AUTHORIZATION
    reply(core, b"USER bob\r\n")
    one(core, b"PASS wrong\r\n")
    assert core.login_failed("SYS/TEMP", "slow down").data.startswith(b"-ERR [SYS/TEMP]")
    reply(core, b"USER bob\r\n")
    one(core, b"PASS right\r\n")
    assert core.login_failed("IN-USE", "locked").data.startswith(b"-ERR [IN-USE]")


def test_too_many_auth_failures_close():
    core = make_core()
    for i in range(MAX_AUTH_FAILURES):
        reply(core, b"USER bob\r\n")
        one(core, b"PASS wrong\r\n")
        answer = core.login_failed("AUTH", "invalid credentials")
        assert isinstance(answer, Close) == (i == MAX_AUTH_FAILURES - 1)
    assert core.state is State.CLOSED
    assert events(core, b"USER bob\r\n") == []


def test_apop_refused():
    assert reply(make_core(), b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n").startswith(b"-ERR")


def test_auth_without_argument_lists_mechanisms():
    data = reply(make_core(), b"AUTH\r\n")
    assert data == b"+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n"


def test_auth_with_initial_response():
    core = make_core()
    initial = b"\0bob\0secret"
    event = one(core, b"AUTH plain " + base64.b64encode(initial) + b"\r\n")
    assert event == SaslStart("PLAIN", initial)
    assert core.login_failed("AUTH", "invalid credentials").data.startswith(b"-ERR [AUTH]")


def test_auth_empty_initial_response_and_no_initial_response():
    assert one(make_core(), b"AUTH PLAIN =\r\n") == SaslStart("PLAIN", b"")
    assert one(make_core(), b"AUTH LOGIN\r\n") == SaslStart("LOGIN", None)


def test_auth_challenge_and_responses():
    core = make_core()
    one(core, b"AUTH LOGIN\r\n")
    assert core.sasl_challenge(b"Username:") == Reply(b"+ VXNlcm5hbWU6\r\n")
    assert one(core, base64.b64encode(b"bob") + b"\r\n") == SaslResponse(b"bob")
    assert core.sasl_challenge(b"") == Reply(b"+ \r\n")
    assert one(core, b"\r\n") == SaslResponse(b"")
    core.logged_in(Maildrop(1, []))
    assert core.state is State.TRANSACTION


def test_auth_cancel_and_bad_base64():
    core = make_core()
    one(core, b"AUTH LOGIN\r\n")
    core.sasl_challenge(b"Username:")
    event = one(core, b"*\r\n")
    assert isinstance(event, SaslCancel) and event.reply.startswith(b"-ERR")
    one(core, b"AUTH LOGIN\r\n")
    core.sasl_challenge(b"Username:")
    event = one(core, b"not base64!\r\n")
    assert isinstance(event, SaslCancel) and event.reply.startswith(b"-ERR")
    # back to commands
    assert reply(core, b"CAPA\r\n").startswith(b"+OK")


@pytest.mark.parametrize(
    "line",
    [b"AUTH CRAM-MD5\r\n", b"AUTH PLAIN !!!\r\n", b"AUTH PLAIN a b\r\n", b"AUTH  PLAIN\r\n"],
)
def test_auth_errors(line):
    assert reply(make_core(), line).startswith(b"-ERR")


def test_auth_refused_on_plaintext_connection():
    assert reply(make_core(plaintext=False), b"AUTH PLAIN\r\n").startswith(b"-ERR [AUTH]")


def test_stls_drops_pipelined_plaintext():
    core = make_core(plaintext=False)
    got = events(core, b"STLS\r\nUSER injected\r\nPASS x\r\n")
    assert got == [StartTls(b"+OK begin TLS negotiation\r\n")]
    core.tls_started(["PLAIN"], True)
    assert core.secure
    assert events(core) == []  # the injected commands are gone
    caps = capa(core)
    assert "STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [({"secure": True}, b"STLS\r\n"), ({"tls": False}, b"STLS\r\n"), ({}, b"STLS now\r\n")],
)
def test_stls_refused(kwargs, line):
    assert reply(make_core(**kwargs), line).startswith(b"-ERR")


def test_utf8_command():
    core = make_core()
    assert reply(core, b"UTF8\r\n").startswith(b"+OK")
    assert core.utf8
    assert reply(core, b"UTF8 x\r\n").startswith(b"-ERR")


def test_quit_in_authorization_closes():
    core = make_core()
    event = one(core, b"QUIT\r\n")
    assert isinstance(event, Close) and event.data.startswith(b"+OK")
    assert core.state is State.CLOSED


@pytest.mark.parametrize("command", [b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"NOOP", b"RSET"])
def test_transaction_commands_refused_before_login(command):
    assert reply(make_core(), command + b"\r\n").startswith(b"-ERR")


def test_completion_without_pending_event_is_a_bug():
    with pytest.raises(RuntimeError):
        make_core().logged_in(Maildrop(1, []))
