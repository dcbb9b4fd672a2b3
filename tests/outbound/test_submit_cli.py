"""Submission fix-ups (RFC 6409 §8) and the dkim / dns commands."""

from __future__ import annotations

import argparse

from postroom.outbound import admin
from postroom.outbound.submit import add_fields, header_field, submission_fixups
from tests.outbound.conftest import settings_for


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    admin.add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_fixups_add_date_and_message_id_only_when_missing():
    bare = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
    fixed = submission_fixups(bare, "mx.example.test", now=0.0)
    assert header_field(fixed, "date") is not None
    assert header_field(fixed, "Message-ID").endswith("@mx.example.test>")
    assert fixed.endswith(b"\r\n\r\nbody\r\n")
    complete = b"Date: Thu, 1 Jan 1970 00:00:00 +0000\r\nMessage-Id: <x@y>\r\n\r\nbody\r\n"
    assert submission_fixups(complete, "mx.example.test") == complete


def test_header_helpers():
    data = b"Subject: a\r\n b\r\nX: 1\r\n\r\nSubject: not a header\r\n"
    assert header_field(data, "subject") == "a b"
    assert header_field(data, "missing") is None
    assert add_fields(b"X: 1\r\n", ["Y: 2"]) == b"X: 1\r\nY: 2\r\n"
    assert add_fields(b"X: 1\r\n\r\nb", ["Y: 2"]) == b"X: 1\r\nY: 2\r\n\r\nb"


async def test_dkim_and_dns_commands(tmp_path, store, capsys):
    settings = settings_for(tmp_path / "data")
    assert await admin.dkim_cmd(store, settings, _cli("dkim", "generate", "example.test",
                                                       "--selector", "mail")) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert 'mail._domainkey.example.test.\tIN\tTXT\t"v=DKIM1; k=rsa; p=' in out
    assert await admin.dkim_cmd(store, settings, _cli("dkim", "generate", "example.test",
                                                       "--selector", "mail")) == 2  # fmt: skip
    assert await admin.dkim_cmd(store, settings, _cli("dkim", "list")) == 0
    assert "example.test\tmail\trsa\tactive" in capsys.readouterr().out

    assert await admin.dns_cmd(store, settings, _cli("dns", "example.test")) == 0
    out = capsys.readouterr().out
    assert "example.test.\t3600\tIN\tMX\t10 mx.example.test." in out
    assert '"v=spf1 mx -all"' in out
    assert 'mail._domainkey.example.test.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p=' in out
    assert "_dmarc.example.test." in out and "_mta-sts.example.test." in out
    assert "_smtp._tls.example.test." in out and "PTR" in out
    assert "not hosted" not in out
    # long TXT values are split into 255-octet strings (RFC 1035 §3.3)
    dkim_line = next(line for line in out.splitlines() if line.startswith("mail._domainkey"))
    assert all(len(chunk) <= 255 for chunk in dkim_line.split('"')[1::2])

    assert await admin.dns_cmd(store, settings, _cli("dns", "other.test")) == 0
    out = capsys.readouterr().out
    assert "not hosted" in out and "no key yet" in out
    assert await admin.dns_cmd(store, settings, _cli("dns", "bad/name")) == 2
