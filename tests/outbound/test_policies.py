"""TLS policies end to end: MTA-STS (RFC 8461), REQUIRETLS (RFC 8689), smarthost with AUTH."""

from __future__ import annotations

from postroom.outbound.queue import OutboundRecipient, RcptState
from tests.outbound.conftest import SENDER, wait_until
from tests.outbound.https import PolicyServer
from tests.outbound.util import MESSAGE, gone, inbox, remote_zone, report_parts

POLICY = "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n"


async def _mta_sts(dns, ca, mx: str = "mx.remote.test"):
    """An enforce policy for remote.test (listing mx.remote.test) served over HTTPS, and a
    zone whose MX is ``mx``."""
    remote_zone(dns, mx=mx)
    dns.zone.add('_mta-sts.remote.test. 60 IN TXT "v=STSv1; id=20260101"')
    dns.zone.add("mta-sts.remote.test. 60 IN A 127.0.0.1")
    return await PolicyServer.start(ca.server_context("mta-sts.remote.test"), POLICY)


async def _start_with_mta_sts(harness, dns, ca, sink, policy):
    return await harness.start(
        settings={"dns": {"nameservers": [dns.nameserver]}},
        mx_port=sink.port,
        mtasts_port=policy.port,
        trust=ca.trust(),
    )


async def _deferred(ob, queue_id):
    """Wait until the message's first recipient is deferred; return the message."""

    async def deferred():
        m = await ob.queue.get(queue_id)
        return m.recipients[0].state is RcptState.DEFERRED

    await wait_until(deferred)
    return await ob.queue.get(queue_id)


async def test_mta_sts_enforce_refuses_unverified_certificate(harness, sinks, dns, ca):
    policy = await _mta_sts(dns, ca)
    try:
        sink = await sinks(tls=ca.self_signed("mx.remote.test"))
        ob = await _start_with_mta_sts(harness, dns, ca, sink, policy)
        queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)

        m = await _deferred(ob, queue_id)
        assert "certificate" in m.recipients[0].diagnostic.lower()
        assert m.recipients[0].status == "4.7.5"
        assert sink.sink.messages == []
        assert policy.requests == 1
        cached = await ob.queue.get_policy("remote.test")
        assert cached is not None and cached.policy_id == "20260101"
    finally:
        await policy.stop()


async def test_mta_sts_enforce_delivers_with_verified_certificate(harness, sinks, dns, ca):
    policy = await _mta_sts(dns, ca)
    try:
        sink = await sinks(tls=ca.server_context("mx.remote.test"))
        ob = await _start_with_mta_sts(harness, dns, ca, sink, policy)
        await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
        await wait_until(lambda: sink.sink.messages)
        assert sink.sink.messages[0].tls
    finally:
        await policy.stop()


async def test_mta_sts_mx_not_in_policy_is_deferred(harness, sinks, dns, ca):
    policy = await _mta_sts(dns, ca, mx="other.remote.test")
    try:
        sink = await sinks(tls=ca.server_context("other.remote.test"))
        ob = await _start_with_mta_sts(harness, dns, ca, sink, policy)
        queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)

        m = await _deferred(ob, queue_id)
        assert "MTA-STS" in m.recipients[0].diagnostic
        assert sink.sink.messages == []
    finally:
        await policy.stop()


async def test_requiretls_to_plaintext_hop_bounces_5_7_30(harness, sinks, store):
    sink = await sinks()
    ob = await harness.start(
        settings={"relay": {"routes": {"remote.test": f"127.0.0.1:{sink.port}"}}}
    )
    queue_id = await ob.submit(
        SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE, requiretls=True
    )
    await wait_until(lambda: inbox(store))
    await wait_until(lambda: gone(ob, queue_id))
    _, _, [rcpt], _, third = report_parts((await inbox(store))[0])
    assert rcpt["Status"] == "5.7.30"
    assert sink.sink.messages == []


async def test_smarthost_with_starttls_and_auth(harness, sinks, ca):
    sink = await sinks(tls=ca.server_context("127.0.0.1"), auth=("relayuser", "s3cret"))
    ob = await harness.start(
        settings={
            "relay": {
                "smarthost": f"127.0.0.1:{sink.port}",
                "smarthost_user": "relayuser",
                "smarthost_password": "s3cret",
            }
        },
        trust=ca.trust(),
    )
    await ob.submit(SENDER, [OutboundRecipient("bob@anywhere.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)
    got = sink.sink.messages[0]
    assert got.tls and got.auth == "relayuser"
    assert got.recipients == ["bob@anywhere.test"]


async def test_smarthost_with_untrusted_certificate_is_deferred(harness, sinks, ca):
    sink = await sinks(tls=ca.self_signed("127.0.0.1"), auth=("relayuser", "s3cret"))
    ob = await harness.start(
        settings={
            "relay": {
                "smarthost": f"127.0.0.1:{sink.port}",
                "smarthost_user": "relayuser",
                "smarthost_password": "s3cret",
            }
        },
        trust=ca.trust(),
    )
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@anywhere.test")], MESSAGE)

    await _deferred(ob, queue_id)
    assert sink.sink.messages == []


async def test_smarthost_with_implicit_tls(harness, sinks, ca):
    sink = await sinks(tls=ca.server_context("127.0.0.1"), implicit=True)
    ob = await harness.start(
        settings={"relay": {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "implicit"}},
        trust=ca.trust(),
    )
    await ob.submit(SENDER, [OutboundRecipient("bob@anywhere.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)
    assert sink.sink.messages[0].recipients == ["bob@anywhere.test"]
