"""End to end: STARTTLS, implicit TLS, AUTH PLAIN/LOGIN/SCRAM-SHA-256, throttling, submission
rules (AUTH before MAIL, sender ownership) and remote recipients from users."""

from __future__ import annotations

import base64
import smtplib

import aiosmtplib
import pytest

from tests.auth.scram_client import ScramClient
from tests.helpers import PASSWORD, ServerThread, client_tls_context
from tests.smtp.conftest import ALICE, BOB
from tests.smtp.e2e import RawClient, alias, inbox


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def submission(srv: ServerThread) -> smtplib.SMTP:
    client = smtplib.SMTP(
        "127.0.0.1", srv.port("submission"), local_hostname="laptop.example", timeout=15
    )
    client.starttls(context=client_tls_context())
    client.ehlo()
    return client


def test_starttls_then_mail(mx):
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=15) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=client_tls_context())
        client.ehlo()
        assert not client.has_extn("starttls") and client.has_extn("requiretls")
        assert client.has_extn("auth")
        client.sendmail(
            "carol@remote.example",
            [ALICE],
            b"Subject: tls\r\n\r\nx\r\n",
            mail_options=["REQUIRETLS"],
        )
    [stored] = inbox(mx, ALICE)
    assert b"(using TLSv1." in stored and b"with ESMTPS id" in stored


def test_command_pipelined_after_starttls_is_not_executed(mx):
    raw = RawClient(mx.port("smtp"))
    raw.send(b"EHLO client.remote.example\r\n")
    raw.replies(1)
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\n")  # one packet
    assert raw.codes(1) == ["220 2.0.0"]
    raw.sock = client_tls_context().wrap_socket(raw.sock)
    raw.buffer = b""
    # the injected MAIL was dropped with the plaintext buffer: RCPT has no transaction
    assert raw.command(b"EHLO client.remote.example").startswith("250")
    assert raw.command(b"RCPT TO:<alice@example.test>") == "503 5.5.1"
    raw.close()


def test_submission_requires_auth_before_mail(mx):
    with submission(mx) as client:
        code, text = client.mail(ALICE)
    assert (code, text[:5]) == (530, b"5.7.0")


def test_auth_refused_before_tls(mx):
    raw = RawClient(mx.port("submission"))
    raw.send(b"EHLO laptop.example\r\n")
    assert "AUTH" not in raw.replies(1)[0]
    assert raw.command(b"AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode())) == "538 5.7.11"
    raw.close()


def test_auth_plain_allowed_without_tls_when_configured(server_factory):
    srv = server_factory(auth={"allow_plaintext": True})
    srv.add_user(ALICE)
    with smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=15) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [ALICE], b"Subject: plain\r\n\r\nx\r\n")
    assert b"with ESMTPA id" in inbox(srv, ALICE)[0]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_plain_and_login_with_smtplib(mx, mechanism):
    with submission(mx) as client:
        client.user, client.password = ALICE, PASSWORD
        auth = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, auth, initial_response_ok=False)
        assert code == 235
        client.sendmail(ALICE, [BOB], b"Subject: sub\r\n\r\nx\r\n")
    [stored] = inbox(mx, BOB)
    assert b"(authenticated as alice@example.test)" in stored
    assert b"with ESMTPSA id" in stored


def test_auth_login_with_initial_response_as_outlook_sends_it(mx):
    raw = RawClient(mx.port("submissions"), tls=True)
    raw.send(b"EHLO laptop.example\r\n")
    raw.replies(1)
    raw.send(b"AUTH LOGIN " + b64(ALICE.encode()) + b"\r\n")
    [challenge] = raw.replies(1)
    assert challenge.startswith("334 ")
    assert base64.b64decode(challenge[4:]) == b"Password:"
    assert raw.command(b64(PASSWORD.encode())) == "235 2.7.0"
    raw.close()


def test_auth_scram_sha_256(mx):
    raw = RawClient(mx.port("submissions"), tls=True)
    raw.send(b"EHLO laptop.example\r\n")
    raw.replies(1)
    scram = ScramClient(ALICE, PASSWORD)
    raw.send(b"AUTH SCRAM-SHA-256 " + b64(scram.first()) + b"\r\n")
    [server_first] = raw.replies(1)
    assert server_first.startswith("334 ")
    raw.send(b64(scram.final(base64.b64decode(server_first[4:]))) + b"\r\n")
    [server_final] = raw.replies(1)
    assert scram.verify(base64.b64decode(server_final[4:]))
    assert raw.command(b"") == "235 2.7.0"
    assert raw.command(b"MAIL FROM:<alice@example.test>") == "250 2.1.0"
    raw.close()


def test_auth_cancel(mx):
    raw = RawClient(mx.port("submissions"), tls=True)
    raw.send(b"EHLO laptop.example\r\n")
    raw.replies(1)
    assert raw.command(b"AUTH LOGIN").startswith("334")
    assert raw.command(b"*") == "501 5.0.0"
    assert raw.command(b"AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode())) == "235 2.7.0"
    raw.close()


def test_wrong_password_then_throttled(server_factory):
    srv = server_factory(auth={"lockout_failures": 3, "failures_before_delay": 10})
    srv.add_user(ALICE)
    raw = RawClient(srv.port("submissions"), tls=True)
    raw.send(b"EHLO laptop.example\r\n")
    raw.replies(1)
    wrong = b"AUTH PLAIN " + b64(f"\0{ALICE}\0wrong".encode())
    assert [raw.command(wrong) for _ in range(3)] == ["535 5.7.8"] * 3
    assert raw.command(wrong) == "454 4.7.0"
    right = b"AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}".encode())
    assert raw.command(right) == "454 4.7.0"  # locked, even with the right password
    raw.close()


def test_sender_ownership(mx):
    alias(mx, "info@example.test", ALICE)
    with submission(mx) as client:
        client.login(ALICE, PASSWORD)
        for sender in (
            ALICE,
            "alice+lists@example.test",
            "info@example.test",
            "ALICE@example.test",
        ):
            assert client.mail(sender)[0] == 250, sender
            client.rset()
        code, text = client.mail(BOB)
        assert (code, text[:5]) == (553, b"5.7.1")
        code, text = client.mail("<>")
        assert (code, text[:5]) == (553, b"5.7.1")
        code, text = client.mail("alice@elsewhere.example")
        assert (code, text[:5]) == (553, b"5.7.1")


def test_authenticated_remote_recipient_is_accepted_for_the_queue(mx):
    with submission(mx) as client:
        client.login(ALICE, PASSWORD)
        client.mail(ALICE)
        assert client.rcpt("dave@elsewhere.example")[0] == 250
        assert client.rcpt(BOB)[0] == 250
        assert client.data(b"Subject: local part\r\n\r\nx\r\n")[0] == 250
    assert len(inbox(mx, BOB)) == 1


def test_auth_on_mx_after_starttls_allows_sending_as_self(mx):
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        code, text = client.mail(BOB)
        assert (code, text[:5]) == (553, b"5.7.1")


def test_implicit_tls_submissions(mx):
    with smtplib.SMTP_SSL(
        "127.0.0.1", mx.port("submissions"), context=client_tls_context(), timeout=15
    ) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], b"Subject: 465\r\n\r\nx\r\n")
    assert b"with ESMTPSA id" in inbox(mx, BOB)[0]


async def test_aiosmtplib_submission_with_starttls_and_login(mx):
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=mx.port("submission"),
        start_tls=True,
        tls_context=client_tls_context(),
        timeout=15,
    )
    await client.connect()
    try:
        await client.login(ALICE, PASSWORD)
        errors, _ = await client.sendmail(ALICE, [BOB], b"Subject: aio\r\n\r\nx\r\n")
        assert errors == {}
    finally:
        await client.quit()
    assert b"with ESMTPSA id" in inbox(mx, BOB)[0]
