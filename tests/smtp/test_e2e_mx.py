"""End to end on the MX service (port 25 role) with smtplib and a raw socket client: delivery
read back from the store, trace fields, recipients, aliases, limits, DSN, SMTPUTF8."""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
import time

import pytest

from postroom.store.sqlite import SqliteStore
from tests.helpers import ServerThread
from tests.smtp.conftest import ALICE, BOB
from tests.smtp.e2e import RawClient, alias, inbox

MESSAGE = (
    b"From: Carol <carol@remote.example>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <1@remote.example>\r\n"
    b"\r\n"
    b"Line one\r\n"
    b".leading dot survives\r\n"
    b"\r\n"
    b"caf\xc3\xa9 8-bit body\r\n"
)

RECEIVED = re.compile(
    rb"Received: from client\.remote\.example \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby mx\.example\.test \(postroom\) with ESMTP id (\S+)\r\n"
    rb"\tfor <alice@example\.test>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n"
)


def smtp(srv: ServerThread, helo: str = "client.remote.example") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", srv.port("smtp"), local_hostname=helo, timeout=15)
    client.ehlo()
    return client


def test_mx_delivery_is_stored_byte_for_byte_with_trace_fields(mx):
    with smtp(mx) as client:
        refused = client.sendmail(
            "carol@remote.example", [ALICE], MESSAGE, mail_options=["BODY=8BITMIME"]
        )
    assert refused == {}
    [stored] = inbox(mx, ALICE)
    head, body = stored[: -len(MESSAGE)], stored[-len(MESSAGE) :]
    assert body == MESSAGE
    assert head.startswith(
        b"Return-Path: <carol@remote.example>\r\nDelivered-To: alice@example.test\r\n"
    )
    assert RECEIVED.fullmatch(head.split(b"\r\n", 2)[2]), head


def test_null_sender_is_accepted_on_mx(mx):
    with smtp(mx) as client:
        client.sendmail("<>", [ALICE], b"Subject: bounce\r\n\r\nx\r\n")
    assert inbox(mx, ALICE)[0].startswith(b"Return-Path: <>\r\n")


def test_unknown_local_user_is_550_5_1_1(mx):
    with smtp(mx) as client:
        client.mail("carol@remote.example")
        code, text = client.rcpt("nobody@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")


def test_relay_attempt_is_554_5_7_1(mx):
    with smtp(mx) as client:
        client.mail("carol@remote.example")
        code, text = client.rcpt("dave@elsewhere.example")
        assert (code, text[:5]) == (554, b"5.7.1")
        client.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("carol@remote.example", ["dave@elsewhere.example"], b"x\r\n")


def test_one_copy_per_account_with_duplicates_aliases_and_plus_addressing(mx):
    alias(mx, "team@example.test", ALICE, BOB)
    with smtp(mx) as client:
        client.sendmail(
            "carol@remote.example",
            [ALICE, "Alice@Example.TEST", "alice+news@example.test", "team@example.test"],
            b"Subject: once\r\n\r\nx\r\n",
        )
    [to_alice] = inbox(mx, ALICE)
    [to_bob] = inbox(mx, BOB)
    assert to_alice == to_bob  # one shared copy: no Delivered-To, no "for" clause
    assert b"Delivered-To" not in to_alice and b"\tfor <" not in to_alice


def test_catch_all_and_alias_precedence(mx):
    alias(mx, "@example.test", BOB)
    alias(mx, "sales@example.test", ALICE)
    with smtp(mx) as client:
        client.sendmail(
            "carol@remote.example", ["whatever@example.test"], b"Subject: c\r\n\r\nx\r\n"
        )
        client.sendmail("carol@remote.example", ["sales@example.test"], b"Subject: s\r\n\r\nx\r\n")
        client.sendmail("carol@remote.example", [ALICE], b"Subject: a\r\n\r\nx\r\n")
    assert [b"Subject: c" in m for m in inbox(mx, BOB)] == [True]
    assert [m.split(b"Subject: ")[1][:1] for m in inbox(mx, ALICE)] == [b"s", b"a"]


def test_alias_loop_and_alias_keeping_a_copy(mx):
    alias(mx, "loop1@example.test", "loop2@example.test")
    alias(mx, "loop2@example.test", "loop1@example.test")
    alias(mx, ALICE, ALICE, BOB)  # alice keeps a copy and forwards to bob
    with smtp(mx) as client:
        client.mail("carol@remote.example")
        assert client.rcpt("loop1@example.test")[:1] == (550,)
        client.rset()
        client.sendmail("carol@remote.example", [ALICE], b"Subject: k\r\n\r\nx\r\n")
    assert len(inbox(mx, ALICE)) == 1 and len(inbox(mx, BOB)) == 1


def test_alias_pointing_outside_is_accepted_for_the_queue(mx):
    """Forwarding through an alias is not relaying: the queue takes the remote copy
    (delivered end to end in tests/e2e/test_relay.py)."""
    alias(mx, "fwd@example.test", "someone@elsewhere.example")
    with smtp(mx) as client:
        client.mail("carol@remote.example")
        assert client.rcpt("fwd@example.test")[0] == 250
        assert client.data(b"Subject: fwd\r\n\r\nx\r\n")[0] == 250


def test_postmaster_without_domain(mx):
    mx.add_user("postmaster@example.test")
    with smtp(mx) as client:
        client.mail("carol@remote.example")
        assert client.rcpt("<Postmaster>")[0] == 250
        assert client.data(b"Subject: pm\r\n\r\nx\r\n")[0] == 250
    assert len(inbox(mx, "postmaster@example.test")) == 1


def test_dsn_parameters_are_accepted(mx):
    with smtp(mx) as client:
        client.sendmail(
            "carol@remote.example",
            [ALICE],
            b"Subject: dsn\r\n\r\nx\r\n",
            mail_options=["RET=HDRS", "ENVID=QQ314159"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@example.test"],
        )
    assert len(inbox(mx, ALICE)) == 1


def test_smtputf8_addresses_and_8bit_headers(mx):
    mx.add_user("jörg@example.test")
    body = "From: Jörg <jörg@example.test>\r\nSubject: Grüße\r\n\r\nÄ\r\n".encode()
    with smtp(mx) as client:
        assert client.has_extn("smtputf8")
        client.sendmail(
            "δοκιμή@παράδειγμα.example",
            ["jörg@example.test"],
            body,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    [stored] = inbox(mx, "jörg@example.test")
    assert stored.endswith(body)
    assert "Return-Path: <δοκιμή@παράδειγμα.example>".encode() in stored
    assert b"with UTF8SMTP id" in stored


def test_non_ascii_address_without_smtputf8_is_refused(mx):
    raw = RawClient(mx.port("smtp"))
    raw.send(b"EHLO client.remote.example\r\n")
    raw.replies(1)
    assert raw.command("MAIL FROM:<jörg@example.test>".encode()) == "553 5.6.7"
    raw.close()


def test_size_declared_too_big_is_refused_at_mail(server_factory):
    srv = server_factory(limits={"message_size": 20_000})
    srv.add_user(ALICE)
    with smtp(srv) as client:
        size = int(client.esmtp_features["size"])
        assert 0 < size <= 20_000
        code, text = client.mail("carol@remote.example", [f"SIZE={size + 1}"])
        assert (code, text[:5]) == (552, b"5.3.4")


def test_oversize_data_is_552_after_the_end(server_factory):
    srv = server_factory(limits={"message_size": 20_000})
    srv.add_user(ALICE)
    with smtp(srv) as client:
        client.mail("carol@remote.example")
        client.rcpt(ALICE)
        code, text = client.data(b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 400)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250  # the session goes on
    assert inbox(srv, ALICE) == []


def test_recipient_limit_is_452_4_5_3(server_factory):
    srv = server_factory(limits={"recipients": 2})
    for name in ("a", "b", "c"):
        srv.add_user(f"{name}@example.test")
    with smtp(srv) as client:
        assert "RCPTMAX=2" in client.esmtp_features["limits"]
        client.mail("carol@remote.example")
        assert client.rcpt("a@example.test")[0] == 250
        assert client.rcpt("b@example.test")[0] == 250
        code, text = client.rcpt("c@example.test")
        assert (code, text[:5]) == (452, b"4.5.3")
        assert client.data(b"Subject: x\r\n\r\ny\r\n")[0] == 250
    assert inbox(srv, "c@example.test") == []


def test_quota_exceeded_is_452_4_2_2(mx):
    mx.add_user("small@example.test", quota=500)
    with smtp(mx) as client:
        client.mail("carol@remote.example", ["SIZE=600"])
        code, text = client.rcpt("small@example.test")
        assert (code, text[:5]) == (452, b"4.2.2")
        client.rset()
        client.mail("carol@remote.example")
        assert client.rcpt("small@example.test")[0] == 250
        code, text = client.data(b"Subject: q\r\n\r\n" + b"z" * 600 + b"\r\n")
        assert (code, text[:5]) == (452, b"4.2.2")


def test_pipelined_batch_is_answered_in_order(mx):
    raw = RawClient(mx.port("smtp"))
    raw.send(
        b"EHLO client.remote.example\r\n"
        b"MAIL FROM:<carol@remote.example>\r\n"
        b"RCPT TO:<alice@example.test>\r\n"
        b"RCPT TO:<nobody@example.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\n"
        b"DATA\r\n"
    )
    assert raw.codes(6)[1:] == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 End"]
    raw.send(b"Subject: p\r\n\r\nbody\r\n.\r\nMAIL FROM:<carol@remote.example>\r\nRSET\r\nQUIT\r\n")
    assert raw.codes(4) == ["250 2.0.0", "250 2.1.0", "250 2.0.0", "221 2.0.0"]
    raw.close()
    assert len(inbox(mx, ALICE)) == len(inbox(mx, BOB)) == 1


def test_bdat_chunks_and_bdat_zero_last(mx):
    raw = RawClient(mx.port("smtp"))
    raw.send(b"EHLO client.remote.example\r\n")
    raw.replies(1)
    part1 = b"Subject: chunked\r\n\r\nfirst\r\n.\r\n"  # no end marker in BDAT
    part2 = b"second\r\n"
    raw.send(
        b"MAIL FROM:<carol@remote.example>\r\nRCPT TO:<alice@example.test>\r\n"
        + b"BDAT %d\r\n" % len(part1)
        + part1
        + b"BDAT %d\r\n" % len(part2)
        + part2
        + b"BDAT 0 LAST\r\n"
    )
    assert raw.codes(5) == ["250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0", "250 2.0.0"]
    raw.send(
        b"MAIL FROM:<carol@remote.example>\r\nRCPT TO:<alice@example.test>\r\nBDAT 9 LAST\r\nSubject:x"
    )
    assert raw.codes(3)[2] == "250 2.0.0"
    assert raw.command(b"QUIT") == "221 2.0.0"
    stored = inbox(mx, ALICE)
    assert stored[0].endswith(b"\r\n" + part1 + part2)
    assert stored[1].endswith(b"\r\nSubject:x")


@pytest.mark.parametrize("probe", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\n"])
def test_smuggling_probes_never_make_a_second_message(mx, probe):
    raw = RawClient(mx.port("smtp"))
    raw.send(
        b"EHLO client.remote.example\r\nMAIL FROM:<carol@remote.example>\r\n"
        b"RCPT TO:<alice@example.test>\r\nDATA\r\n"
    )
    assert raw.codes(4)[-1] == "354 End"
    raw.send(
        b"Subject: legit\r\n\r\nhello"
        + probe
        + b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n"
    )
    first, second = raw.codes(2)
    assert second == "221 2.0.0"
    assert inbox(mx, BOB) == []  # the smuggled transaction never happened
    stored = inbox(mx, ALICE)
    if first == "250 2.0.0":  # bare LF: normalised into one message
        assert len(stored) == 1 and b"MAIL FROM:<evil@remote.example>" in stored[0]
        assert b"\r\nSubject: smuggled" in stored[0]
    else:  # bare CR: the message is refused
        assert first == "554 5.5.2" and stored == []


def test_helo_cannot_inject_header_fields(mx):
    with smtp(mx, helo="evil(x)Bcc:victim@example.org") as client:
        client.sendmail("carol@remote.example", [ALICE], b"Subject: h\r\n\r\nx\r\n")
    [stored] = inbox(mx, ALICE)
    header = stored.split(b"\r\nSubject: h")[0]
    assert b"\nBcc" not in header
    assert b"from [127.0.0.1] (helo=evil?x?Bcc:victim@example.org)" in header


def test_vrfy_does_not_reveal_users(mx):
    with smtp(mx) as client:
        assert client.verify(ALICE)[0] == client.verify("nobody@example.test")[0] == 252


def test_idle_client_gets_421_and_is_disconnected(server_factory):
    srv = server_factory(limits={"smtp_timeout": 0.5})
    raw = RawClient(srv.port("smtp"))
    assert raw.codes(1) == ["421 4.4.2"]  # sent unprompted once the client stayed idle
    assert raw.closed()


def test_too_many_errors_disconnects(mx):
    raw = RawClient(mx.port("smtp"))
    raw.send(b"BOGUS\r\n" * 25)
    replies = raw.codes(21)
    assert replies[:20] == ["500 5.5.2"] * 20 and replies[20] == "421 4.7.0"
    assert raw.closed()


def test_configured_session_limits(server_factory):
    """[limits] data_line_length, smtp_error_limit and smtp_junk_limit, as an admin sets them."""
    srv = server_factory(
        limits={"data_line_length": 2000, "smtp_error_limit": 2, "smtp_junk_limit": 3}
    )
    srv.add_user(ALICE)
    raw = RawClient(srv.port("smtp"))
    raw.send(b"EHLO client.remote.example\r\n")
    raw.replies(1)
    for line, code in ((b"a" * 1990, "250 2.0.0"), (b"b" * 2010, "554 5.6.0")):
        assert raw.command(b"MAIL FROM:<carol@remote.example>") == "250 2.1.0"
        assert raw.command(f"RCPT TO:<{ALICE}>".encode()) == "250 2.1.5"
        assert raw.command(b"DATA") == "354 End"
        assert raw.command(b"Subject: long\r\n\r\n" + line + b"\r\n.") == code
    [kept] = inbox(srv, ALICE)
    assert kept.endswith(b"\r\n\r\n" + b"a" * 1990 + b"\r\n")  # intact, not folded
    raw.send(b"NOOP\r\n" * 5)
    assert raw.codes(4) == ["250 2.0.0"] * 3 + ["421 4.7.0"]
    assert raw.closed()

    raw = RawClient(srv.port("smtp"))
    raw.send(b"BOGUS\r\n" * 4)
    assert raw.codes(3) == ["500 5.5.2", "500 5.5.2", "421 4.7.0"]
    assert raw.closed()


def test_graceful_stop_lets_the_message_being_received_finish(mx):
    """SIGTERM: a session between transactions ends at once with 421; one in the middle of
    DATA may finish its message, which is stored and acknowledged, and then gets 421."""
    busy = RawClient(mx.port("smtp"))
    busy.command(b"EHLO client.example")
    busy.command(b"MAIL FROM:<carol@remote.example>")
    busy.command(b"RCPT TO:<alice@example.test>")
    assert busy.command(b"DATA").startswith("354")
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    idle = RawClient(mx.port("smtp"))
    assert idle.command(b"EHLO idle.example").startswith("250")
    time.sleep(0.3)  # the server has read the first half
    stopping = threading.Thread(target=lambda: mx.call(mx.server.stop(grace=20), timeout=60))
    stopping.start()
    try:
        assert idle.codes(1) == ["421 4.3.2"]
        time.sleep(0.3)
        busy.send(b"second half\r\n.\r\n")
        assert busy.codes(2) == ["250 2.0.0", "421 4.3.2"]
        assert busy.closed()
    finally:
        stopping.join()
        busy.close()
        idle.close()
    store = SqliteStore(mx.settings.data_path)

    async def stored() -> list[bytes]:
        await store.open()
        try:
            account = await store.get_account(ALICE)
            inbox_ = await store.get_mailbox(account.id, "INBOX")
            messages = await store.fetch(inbox_.id, await store.uids(inbox_.id))
            return [await store.read_blob(m.blob_id) for m in messages]
        finally:
            await store.close()

    [message] = asyncio.run(stored())
    assert message.endswith(b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n")
