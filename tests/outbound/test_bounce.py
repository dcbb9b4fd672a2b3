"""The RFC 3464 report format on its own."""

from __future__ import annotations

import email
import email.policy

import pytest

from postroom.outbound.bounce import ReportedRecipient, build_dsn

ORIGINAL = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody line\r\n"


def _build(**kwargs):
    args = dict(
        reporting_mta="mx.example.test",
        sender="a@example.test",
        queue_id="q1",
        envid=None,
        arrival=1_700_000_000.0,
        recipients=[ReportedRecipient("b@remote.test", "failed", "5.1.1")],
        original=ORIGINAL,
        full=False,
        now=1_700_000_100.0,
    )
    args.update(kwargs)
    return build_dsn(**args)


def test_lines_are_crlf_and_short():
    raw = _build(
        recipients=[
            ReportedRecipient(
                "b@remote.test",
                "failed",
                "5.1.1",
                remote_mta="mx.remote.test",
                diagnostic="550 " + "x" * 5000 + "\r\nsecond line",
            )
        ]
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) < 998


def test_headers_only_by_default_and_full_on_request():
    headers_only = email.message_from_bytes(_build(), policy=email.policy.compat32)
    assert headers_only.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert b"body line" not in _build()
    full = email.message_from_bytes(_build(full=True), policy=email.policy.compat32)
    assert full.get_payload()[2].get_content_type() == "message/rfc822"
    assert b"body line" in _build(full=True)


def test_international_addresses_use_global_types():
    raw = _build(recipients=[ReportedRecipient("jürgen@remote.test", "failed", "5.1.1")])
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    types = [p.get_content_type() for p in msg.get_payload()]
    assert types == ["text/plain", "message/global-delivery-status", "message/global-headers"]
    assert "Final-Recipient: utf-8; jürgen@remote.test".encode() in raw


def test_delayed_report_fields():
    raw = _build(
        recipients=[
            ReportedRecipient(
                "b@remote.test",
                "delayed",
                "4.4.1",
                last_attempt=1_700_000_050.0,
                will_retry_until=1_700_400_000.0,
            )
        ],
        envid="ENV+1",
    )
    text = raw.decode()
    assert "Subject: Delayed Mail (still being retried)" in text
    assert "Original-Envelope-Id: ENV+1" in text
    assert "Last-Attempt-Date: " in text and "Will-Retry-Until: " in text


def test_needs_a_recipient():
    with pytest.raises(ValueError):
        _build(recipients=[])
