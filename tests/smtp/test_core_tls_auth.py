"""Core: STARTTLS (RFC 3207) and AUTH (RFC 4954) state handling."""

from __future__ import annotations

import base64

import pytest

from postroom.smtp.reply import AUTH_FAILED, AUTH_TEMPORARY
from postroom.smtp.server import AuthCancelled, AuthResponse, AuthStart, Mail, StartTLS
from tests.smtp.core import Driver, codes


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# -- STARTTLS --------------------------------------------------------------------------------
def test_starttls_discards_pipelined_commands_and_resets_state():
    d = Driver(mechanisms=())
    d.send(b"EHLO c.example\r\n")
    out = d.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<x@example.test>\r\n")
    assert codes(out) == ["220 2.0.0"]
    assert d.tls_requested and isinstance(d.events[-1], StartTLS)
    d.start_tls(("PLAIN",))
    assert d.core.secure and d.core.helo is None and d.core.transaction is None
    # the injected MAIL was dropped; EHLO is needed again
    assert codes(d.send(b"MAIL FROM:<a@example.org>\r\n")) == ["503 5.5.1"]
    assert not any(isinstance(e, Mail) for e in d.events)
    lines = d.send(b"EHLO c.example\r\n").decode().split("\r\n")
    assert "250-AUTH PLAIN" in lines and not any("STARTTLS" in line for line in lines)


def test_starttls_forgets_a_transaction_and_authentication():
    d = Driver(mechanisms=("PLAIN",), secure=False)
    d.ready()
    d.core.user = "someone@example.test"
    d.send(b"STARTTLS\r\n")
    d.start_tls()
    assert d.core.user is None and d.core.transaction is None


def test_starttls_errors():
    d = Driver()
    assert codes(d.send(b"STARTTLS\r\n")) == ["503 5.5.1"]  # EHLO first
    d.send(b"EHLO c.example\r\n")
    assert codes(d.send(b"STARTTLS now\r\n")) == ["501 5.5.4"]
    d = Driver(secure=True)
    d.send(b"EHLO c.example\r\n")
    assert codes(d.send(b"STARTTLS\r\n")) == ["503 5.5.1"]
    d = Driver(starttls=False)
    d.send(b"EHLO c.example\r\n")
    assert codes(d.send(b"STARTTLS\r\n")) == ["454 4.7.0"]


def test_bytes_received_before_the_handshake_are_dropped():
    d = Driver()
    d.send(b"EHLO c.example\r\nSTARTTLS\r\n")
    d.core.receive(b"NOOP\r\n")  # plaintext that arrived before the handshake
    with pytest.raises(RuntimeError):
        d.core.next_event()  # the glue owes the handshake first
    d.start_tls()
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]


# -- AUTH ------------------------------------------------------------------------------------
def tls_driver(**options: object) -> Driver:
    d = Driver(secure=True, mechanisms=("PLAIN", "LOGIN", "SCRAM-SHA-256"), **options)
    d.send(b"EHLO c.example\r\n")
    return d


def test_auth_plain_with_initial_response():
    d = tls_driver()
    seen = []

    def auth(event):
        seen.append(event)
        d.core.auth_succeeded("alice@example.test")

    d.auth = auth
    out = d.send(b"AUTH PLAIN " + b64(b"\0alice@example.test\0pw") + b"\r\n")
    assert codes(out) == ["235 2.7.0"]
    assert seen == [AuthStart("PLAIN", b"\0alice@example.test\0pw")]
    assert d.core.user == "alice@example.test"
    assert codes(d.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]  # already authenticated


def test_auth_login_challenges_and_responses():
    d = tls_driver()
    seen = []

    def auth(event):
        seen.append(event)
        if isinstance(event, AuthStart):
            d.core.auth_challenge(b"Password:")
        else:
            d.core.auth_succeeded("u@example.test")

    d.auth = auth
    out = d.send(b"auth login " + b64(b"u@example.test") + b"\r\n")
    assert out == b"334 " + b64(b"Password:") + b"\r\n"
    assert codes(d.send(b64(b"secret") + b"\r\n")) == ["235 2.7.0"]
    assert seen == [AuthStart("LOGIN", b"u@example.test"), AuthResponse(b"secret")]


def test_auth_empty_initial_response_and_empty_challenge():
    d = tls_driver()
    seen = []

    def auth(event):
        seen.append(event)
        if isinstance(event, AuthStart) and event.initial is None:
            d.core.auth_challenge(b"")
        else:
            d.core.answer(AUTH_FAILED)

    d.auth = auth
    assert d.send(b"AUTH PLAIN\r\n") == b"334 \r\n"
    assert codes(d.send(b"\r\n")) == ["535 5.7.8"]
    assert seen[1] == AuthResponse(b"")
    assert codes(d.send(b"AUTH PLAIN =\r\n")) == ["535 5.7.8"]
    assert seen[2] == AuthStart("PLAIN", b"")


def test_auth_cancel_with_star():
    d = tls_driver()
    d.auth = lambda event: d.core.auth_challenge(b"")
    d.send(b"AUTH LOGIN\r\n")
    assert codes(d.send(b"*\r\n")) == ["501 5.0.0"]
    assert isinstance(d.events[-1], AuthCancelled)
    assert codes(d.send(b"NOOP\r\n")) == ["250 2.0.0"]


def test_auth_bad_base64():
    d = tls_driver()
    d.auth = lambda event: d.core.auth_challenge(b"")
    assert codes(d.send(b"AUTH PLAIN !!!\r\n")) == ["501 5.5.2"]
    d.send(b"AUTH PLAIN\r\n")
    assert codes(d.send(b"not base64!\r\n")) == ["501 5.5.2"]
    assert isinstance(d.events[-2], AuthCancelled)


def test_auth_temporary_failure():
    d = tls_driver()
    d.auth = lambda event: d.core.answer(AUTH_TEMPORARY)
    assert codes(d.send(b"AUTH PLAIN " + b64(b"\0a\0b") + b"\r\n")) == ["454 4.7.0"]
    assert d.core.user is None


@pytest.mark.parametrize(
    "line, code",
    [
        (b"AUTH CRAM-MD5", "504 5.5.4"),
        (b"AUTH", "501 5.5.4"),
        (b"AUTH PLAIN a b", "501 5.5.4"),
        (b"AUTH pl@in", "501 5.5.4"),
    ],
)
def test_auth_refusals(line, code):
    d = tls_driver()
    assert codes(d.send(line + b"\r\n")) == [code]


def test_auth_needs_ehlo_and_no_transaction():
    d = Driver(secure=True, mechanisms=("PLAIN",))
    assert codes(d.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]
    d.ready()
    assert codes(d.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]


def test_auth_before_tls_needs_encryption():
    d = Driver(mechanisms=())
    d.send(b"EHLO c.example\r\n")
    assert codes(d.send(b"AUTH PLAIN " + b64(b"\0a\0b") + b"\r\n")) == ["538 5.7.11"]


def test_submission_mail_after_auth():
    d = tls_driver(auth_required=True)
    assert codes(d.send(b"MAIL FROM:<a@example.test>\r\n")) == ["530 5.7.0"]
    d.auth = lambda event: d.core.auth_succeeded("a@example.test")
    d.send(b"AUTH PLAIN " + b64(b"\0a@example.test\0pw") + b"\r\n")
    assert codes(d.send(b"MAIL FROM:<a@example.test>\r\n")) == ["250 2.1.0"]


def test_answering_without_a_pending_decision_is_a_programming_error():
    d = Driver()
    with pytest.raises(RuntimeError):
        d.core.answer(AUTH_FAILED)
    with pytest.raises(RuntimeError):
        d.core.tls_started(())
