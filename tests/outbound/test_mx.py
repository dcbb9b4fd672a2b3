"""MX resolution against a real DNS server on loopback, through the delivery worker."""

from __future__ import annotations

from postroom.outbound.dns import DnsError, Resolver
from postroom.outbound.queue import OutboundRecipient, RcptState
from tests.outbound.conftest import SENDER, wait_until
from tests.outbound.util import MESSAGE, gone, inbox, report_parts


def dns_settings(dns) -> dict:
    return {"dns": {"nameservers": [dns.nameserver]}}


async def _bounce_status(harness, store, dns, address: str) -> dict:
    ob = await harness.start(settings=dns_settings(dns), mx_port=1)
    queue_id = await ob.submit(SENDER, [OutboundRecipient(address)], MESSAGE)
    await wait_until(lambda: inbox(store))
    await wait_until(lambda: gone(ob, queue_id))
    _, _, [rcpt], _, _ = report_parts((await inbox(store))[0])
    return rcpt


async def test_null_mx_fails_permanently(harness, store, dns):
    dns.zone.add("nomail.test. 60 IN MX 0 .")
    rcpt = await _bounce_status(harness, store, dns, "bob@nomail.test")
    assert rcpt["Status"] == "5.1.10" and "null MX" in rcpt["Diagnostic-Code"]


async def test_nonexistent_domain_fails_permanently(harness, store, dns):
    rcpt = await _bounce_status(harness, store, dns, "bob@nowhere.test")
    assert rcpt["Status"] == "5.1.2"
    assert "Remote-MTA" not in rcpt
    assert rcpt["Diagnostic-Code"].startswith("X-Postroom; ")


async def test_mx_pointing_at_ourselves_is_a_loop(harness, store, dns):
    dns.zone.add("loop.test. 60 IN MX 10 mx.example.test.")
    rcpt = await _bounce_status(harness, store, dns, "bob@loop.test")
    assert rcpt["Status"] == "5.4.6"


async def test_servfail_is_deferred(harness, dns):
    dns.zone.servfail.add("flaky.test")
    ob = await harness.start(settings=dns_settings(dns), mx_port=1)
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@flaky.test")], MESSAGE)

    async def deferred():
        m = await ob.queue.get(queue_id)
        return m.recipients[0].state is RcptState.DEFERRED

    await wait_until(deferred)
    assert (await ob.queue.get(queue_id)).recipients[0].status == "4.4.3"


async def test_mx_preference_order_and_fallback(harness, sinks, dns):
    sink = await sinks()
    dns.zone.add("remote.test. 60 IN MX 10 dead.remote.test.")
    dns.zone.add("remote.test. 60 IN MX 20 live.remote.test.")
    dns.zone.add("dead.remote.test. 60 IN A 127.0.0.2")  # nothing listens there
    dns.zone.add("live.remote.test. 60 IN A 127.0.0.1")
    ob = await harness.start(settings=dns_settings(dns), mx_port=sink.port)
    await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: sink.sink.messages)


async def test_resolver_orders_mx_and_falls_back_to_address(dns):
    dns.zone.add("remote.test. 60 IN MX 20 b.remote.test.")
    dns.zone.add("remote.test. 60 IN MX 10 a.remote.test.")
    dns.zone.add("plain.test. 60 IN A 127.0.0.1")
    dns.zone.add("plain.test. 60 IN AAAA ::1")
    r = Resolver([dns.nameserver])
    assert [h.name for h in await r.mx("remote.test")] == ["a.remote.test", "b.remote.test"]
    assert [h.name for h in await r.mx("plain.test")] == ["plain.test"]  # implicit MX
    assert await r.addresses("plain.test") == ["127.0.0.1", "::1"]
    assert await r.addresses("[::1]") == ["::1"]
    try:
        await r.mx("missing.test")
    except DnsError as exc:
        assert exc.permanent and exc.status == "5.1.2"
    else:
        raise AssertionError("NXDOMAIN not reported")
