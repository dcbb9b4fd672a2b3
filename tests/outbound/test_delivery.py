"""End-to-end delivery: postroom's queue to a real SMTP sink over loopback sockets."""

from __future__ import annotations

import dkim

from postroom.outbound import dkim as dkim_keys
from postroom.outbound.queue import OutboundRecipient
from postroom.outbound.submit import enqueue
from tests.outbound.conftest import SENDER, wait_until
from tests.outbound.util import (
    MESSAGE,
    app_for,
    dkim_dns,
    gone,
    inbox,
    publish_key,
    remote_zone,
    report_parts,
)


async def test_route_delivers_intact_with_valid_dkim(harness, sinks, dns, tmp_path):
    sink = await sinks()
    rsa = dkim_keys.generate(tmp_path / "data", "example.test")
    ed = dkim_keys.generate(tmp_path / "data", "example.test", algorithm="ed25519")
    publish_key(dns, rsa)
    publish_key(dns, ed)
    ob = await harness.start(
        settings={"relay": {"routes": {"remote.test": f"127.0.0.1:{sink.port}"}}}
    )

    queue_id = await enqueue(
        app_for(ob), SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE, authenticated=True
    )
    await wait_until(lambda: sink.sink.messages)
    got = sink.sink.messages[0]
    assert got.sender == SENDER and got.recipients == ["bob@remote.test"]
    assert got.data.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1])
    assert b"\r\nDate: " in got.data and b"\r\nMessage-ID: <" in got.data
    assert got.data.startswith(b"DKIM-Signature: ")
    lookup = dkim_dns(dns)
    assert dkim.verify(got.data, dnsfunc=lookup)  # the RSA signature, topmost
    d = dkim.DKIM(got.data)
    assert d.verify(idx=1, dnsfunc=lookup)  # the Ed25519 one
    assert d.signature_fields[b"a"] == b"ed25519-sha256"
    from_count = [h.strip() for h in d.signature_fields[b"h"].lower().split(b":")].count(b"from")
    assert from_count == 2  # From oversigned
    await wait_until(lambda: gone(ob, queue_id))


async def test_mx_from_loopback_dns(harness, sinks, dns):
    sink = await sinks()
    remote_zone(dns)
    ob = await harness.start(settings={"dns": {"nameservers": [dns.nameserver]}}, mx_port=sink.port)
    await enqueue(app_for(ob), SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)
    assert sink.sink.messages[0].data == MESSAGE  # relayed, not authenticated: unchanged


def route_to(port: int) -> dict:
    return {"relay": {"routes": {"remote.test": f"127.0.0.1:{port}"}}}


async def test_4xx_then_2xx_delivers_after_retry(harness, sinks):
    sink = await sinks()
    sink.sink.rcpt_replies = ["451 4.3.0 greylisted, try again"]
    ob = await harness.start(settings=route_to(sink.port))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)
    await wait_until(lambda: gone(ob, queue_id))
    assert len(sink.sink.messages) == 1
    assert sink.sink.messages[0].data == MESSAGE


async def test_5xx_bounces_into_senders_inbox(harness, sinks, store):
    sink = await sinks()
    sink.sink.rcpt_replies = ["550 5.1.1 <bob@remote.test>: no such user"]
    ob = await harness.start(settings=route_to(sink.port))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE, envid="E1")
    await wait_until(lambda: inbox(store))
    await wait_until(lambda: gone(ob, queue_id))
    [raw] = await inbox(store)
    assert raw.startswith(b"Return-Path: <>\r\n")
    msg, human, [rcpt], per_message, third = report_parts(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert msg["To"] == f"<{SENDER}>"
    assert "bob@remote.test" in human and "no such user" in human
    assert [p.get_content_type() for p in msg.get_payload()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "E1"
    assert "Arrival-Date" in per_message
    assert rcpt["Final-Recipient"] == "rfc822; bob@remote.test"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.1"
    assert rcpt["Remote-MTA"] == "dns; 127.0.0.1"
    assert rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@remote.test>: no such user"
    headers = third.get_payload()
    assert "Subject: outbound test" in headers and "Hello Bob" not in headers


async def test_ret_full_orcpt_and_one_report_for_two_failures(harness, sinks, store):
    sink = await sinks()
    sink.sink.rcpt_replies = ["550 5.1.1 unknown", "553 5.1.3 bad address"]
    ob = await harness.start(settings=route_to(sink.port))
    await ob.submit(
        SENDER,
        [
            OutboundRecipient(
                "bob@remote.test", frozenset({"FAILURE"}), ("rfc822", "Bob@Old.test")
            ),
            OutboundRecipient("carol@remote.test"),
        ],
        MESSAGE,
        ret="FULL",
    )
    await wait_until(lambda: inbox(store))
    [raw] = await inbox(store)
    msg, _, rcpts, _, third = report_parts(raw)
    assert [r["Final-Recipient"] for r in rcpts] == [
        "rfc822; bob@remote.test",
        "rfc822; carol@remote.test",
    ]
    assert rcpts[0]["Original-Recipient"] == "rfc822; Bob@Old.test"
    assert rcpts[1]["Status"] == "5.1.3"
    assert third.get_content_type() == "message/rfc822"
    assert MESSAGE.split(b"\r\n\r\n")[1] in raw  # the whole original came back


async def test_no_report_for_null_sender_or_notify_never(harness, sinks, store):
    sink = await sinks()
    sink.sink.rcpt_replies = ["550 5.1.1 unknown", "550 5.1.1 unknown"]
    ob = await harness.start(settings=route_to(sink.port))
    a = await ob.submit("", [OutboundRecipient("bob@remote.test")], MESSAGE)
    b = await ob.submit(
        SENDER, [OutboundRecipient("bob@remote.test", frozenset({"NEVER"}))], MESSAGE
    )
    await wait_until(lambda: gone(ob, a))
    await wait_until(lambda: gone(ob, b))
    assert await inbox(store) == []


async def test_success_notify_gets_relayed_report(harness, sinks, store):
    sink = await sinks()  # aiosmtpd does not offer DSN: we report "relayed" ourselves
    ob = await harness.start(settings=route_to(sink.port))
    await ob.submit(SENDER, [OutboundRecipient("bob@remote.test", frozenset({"SUCCESS"}))], MESSAGE)
    await wait_until(lambda: inbox(store))
    [raw] = await inbox(store)
    msg, _, [rcpt], _, _ = report_parts(raw)
    assert rcpt["Action"] == "relayed" and rcpt["Status"].startswith("2.")
    assert msg["Subject"] == "Successful Mail Delivery Report"


async def test_starttls_used_when_offered(harness, sinks, ca):
    sink = await sinks(tls=ca.self_signed("sink.remote.test"))
    ob = await harness.start(settings=route_to(sink.port))
    await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)
    assert sink.sink.messages[0].tls


async def test_one_connection_carries_several_messages(harness, sinks):
    sink = await sinks()
    ob = await harness.start(run=False, settings=route_to(sink.port))
    ids = [
        await ob.submit(SENDER, [OutboundRecipient(f"user{i}@remote.test")], MESSAGE)
        for i in range(5)
    ]
    await harness.stop(ob)
    ob = await harness.start(settings=route_to(sink.port))
    await wait_until(lambda: len(sink.sink.messages) == 5)
    for queue_id in ids:
        await wait_until(lambda q=queue_id: gone(ob, q))
    assert sink.sink.connections == 1


async def test_connections_per_destination_are_limited(harness, sinks):
    sink = await sinks()
    ob = await harness.start(run=False, settings=route_to(sink.port), per_destination=2)
    for i in range(60):
        await ob.submit(SENDER, [OutboundRecipient(f"user{i}@remote.test")], MESSAGE)
    await harness.stop(ob)
    ob = await harness.start(settings=route_to(sink.port), per_destination=2)
    await wait_until(lambda: len(sink.sink.messages) == 60)
    assert sink.sink.max_active <= 2
    assert sink.sink.connections < 60  # connections were reused
