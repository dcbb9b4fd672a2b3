"""MTA-STS policy parsing, matching and the HTTPS fetch rules (RFC 8461)."""

from __future__ import annotations

import pytest

from postroom.outbound.dns import Resolver
from postroom.outbound.mtasts import (
    HttpsFetcher,
    PolicyError,
    mx_matches,
    parse_policy,
    parse_txt,
)
from tests.outbound.https import PolicyServer

GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.example.test\r\nmax_age: 86400\r\n"


def test_parse_policy():
    p = parse_policy(GOOD)
    assert (p.mode, p.mx, p.max_age) == ("enforce", ("mx1.example.test", "*.example.test"), 86400)
    assert parse_policy(GOOD.replace("86400", "99999999999"[:10])).max_age == 31557600
    for bad in (
        GOOD.replace("STSv1", "STSv2"),
        GOOD.replace("enforce", "strict"),
        GOOD.replace("max_age: 86400", "max_age: soon"),
        "version: STSv1\nmode: enforce\nmax_age: 1\n",
    ):
        with pytest.raises(PolicyError):
            parse_policy(bad)


def test_mx_patterns():
    assert mx_matches("*.example.test", "mx.example.test")
    assert not mx_matches("*.example.test", "a.b.example.test")
    assert not mx_matches("*.example.test", "example.test")
    assert mx_matches("MX.example.test.", "mx.example.test")


def test_txt_record():
    assert parse_txt(["v=STSv1; id=2026abc;"]) == "2026abc"
    assert parse_txt(["v=STSv1; id=a", "v=STSv1; id=b"]) is None  # two records: none
    assert parse_txt(["v=spf1 -all"]) is None
    assert parse_txt(["v=STSv1; id=not-alnum"]) is None


@pytest.mark.parametrize(
    "status, content_type, body, error",
    [
        ("200 OK", "text/plain; charset=utf-8", GOOD, None),
        ("404 Not Found", "text/plain", "", "HTTP status 404"),
        ("301 Moved", "text/plain", "", "HTTP status 301"),  # redirects are not followed
        ("200 OK", "text/html", GOOD, "not text/plain"),
        ("200 OK", "text/plain", "x" * (65 * 1024), "larger than"),
    ],
)
async def test_fetch_rules(dns, ca, status, content_type, body, error):
    dns.zone.add("mta-sts.example.test. 60 IN A 127.0.0.1")
    server = await PolicyServer.start(
        ca.server_context("mta-sts.example.test"), body, status=status, content_type=content_type
    )
    try:
        fetch = HttpsFetcher(Resolver([dns.nameserver]), port=server.port, context=ca.trust())
        if error is None:
            assert parse_policy(await fetch("example.test")).mode == "enforce"
        else:
            with pytest.raises(PolicyError, match=error):
                await fetch("example.test")
    finally:
        await server.stop()


async def test_fetch_refuses_untrusted_certificate(dns, ca):
    dns.zone.add("mta-sts.example.test. 60 IN A 127.0.0.1")
    server = await PolicyServer.start(ca.self_signed("mta-sts.example.test"), GOOD)
    try:
        fetch = HttpsFetcher(Resolver([dns.nameserver]), port=server.port, context=ca.trust())
        with pytest.raises(PolicyError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch("example.test")
    finally:
        await server.stop()
