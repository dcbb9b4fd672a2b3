"""Mail for other domains, end to end: SMTP accepts it, the queue delivers it to a real SMTP
sink on loopback (a static route), DKIM-signed, and failures come back as reports."""

from __future__ import annotations

import smtplib
import time
from email import message_from_bytes

import dkim
import pytest

from postroom.outbound.dkim import generate, list_keys
from tests.helpers import PASSWORD, ServerThread, client_tls_context, make_settings
from tests.outbound.sink import Sink, SinkServer


@pytest.fixture
def relay(tmp_path):
    """A server whose queue routes remote.test to a sink running on the server's loop."""
    settings = make_settings(tmp_path / "data", queue={"first_retry": 1.0, "max_retry": 1.0})
    with ServerThread(settings) as srv:
        sink_server = srv.call(SinkServer.start(Sink()))
        srv.settings.relay.routes["remote.test"] = f"127.0.0.1:{sink_server.port}"
        srv.add_user("alice@example.test")
        srv.add_user("carol@example.test")
        generate(srv.settings.data_path, "example.test")  # as `postroom domain add` does
        try:
            yield srv, sink_server.sink
        finally:
            srv.call(sink_server.stop())


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def inbox(srv: ServerThread, address: str) -> list[bytes]:
    async def read():
        account = await srv.store.get_account(address)
        box = await srv.store.get_mailbox(account.id, "INBOX")
        messages = await srv.store.fetch(box.id, await srv.store.uids(box.id))
        return [await srv.store.read_blob(m.blob_id) for m in messages]

    return srv.call(read())


MESSAGE = (
    "From: Alice <alice@example.test>\r\nTo: bob@remote.test, carol@example.test\r\n"
    "Subject: over the wall\r\n\r\nHello Bob and Carol.\r\n"
)


def test_submission_to_a_remote_and_a_local_recipient(relay):
    srv, sink = relay
    with smtplib.SMTP_SSL(
        "127.0.0.1", srv.port("submissions"), context=client_tls_context(), timeout=10
    ) as client:
        client.login("alice@example.test", PASSWORD)
        refused = client.sendmail(
            "alice@example.test", ["bob@remote.test", "carol@example.test"], MESSAGE
        )
        assert refused == {}
    wait_for(lambda: sink.messages)
    sent = sink.messages[0]
    assert sent.sender == "alice@example.test" and sent.recipients == ["bob@remote.test"]
    # RFC 6409 §8 fix-ups, a trace field, and a DKIM signature that verifies
    parsed = message_from_bytes(sent.data)
    assert parsed["Date"] and parsed["Message-ID"] and parsed["Received"]
    assert b"DKIM-Signature:" in sent.data
    records = {
        f"{key.dns_name}.": key.dns_value().encode()
        for key in list_keys(srv.settings.data_path, "example.test")
    }
    assert dkim.verify(sent.data, dnsfunc=lambda name, timeout=5: records[name.decode()])
    # the local copy has the same fix-ups
    (local,) = wait_for(lambda: inbox(srv, "carol@example.test"))
    assert message_from_bytes(local)["Message-ID"] == parsed["Message-ID"]


def test_alias_pointing_outside_is_forwarded(relay):
    srv, sink = relay
    srv.call(srv.store.add_alias("fwd@example.test", ["friend@remote.test"]))
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as client:
        client.sendmail("someone@else.test", ["fwd@example.test"], "Subject: hi\r\n\r\nhi\r\n")
    wait_for(lambda: sink.messages)
    assert sink.messages[0].recipients == ["friend@remote.test"]
    assert sink.messages[0].sender == "someone@else.test"


def test_remote_refusal_comes_back_as_a_report(relay):
    srv, sink = relay
    sink.rcpt_replies.append("550 5.1.1 no such user here")
    with smtplib.SMTP_SSL(
        "127.0.0.1", srv.port("submissions"), context=client_tls_context(), timeout=10
    ) as client:
        client.login("alice@example.test", PASSWORD)
        client.sendmail("alice@example.test", ["ghost@remote.test"], MESSAGE)
    (report,) = wait_for(lambda: inbox(srv, "alice@example.test"))
    parsed = message_from_bytes(report)
    assert parsed.get_content_type() == "multipart/report"
    assert "ghost@remote.test" in report.decode("utf-8", "replace")
    assert b"5.1.1" in report


def test_mx_still_refuses_relaying(relay):
    srv, _ = relay
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as client:
        client.ehlo("client.test")
        client.mail("someone@else.test")
        code, text = client.rcpt("bob@remote.test")
    assert (code, text[:5]) == (554, b"5.7.1")
