"""Property tests: hostile input to the parsers and encoders never escapes their contract."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.outbound.bounce import ReportedRecipient, build_dsn
from postroom.outbound.client import reply_status, utf8_addr_xtext, xtext
from postroom.outbound.mtasts import PolicyError, parse_policy, parse_txt
from postroom.outbound.submit import header_field, submission_fixups
from postroom.smtp.address import xtext_decode


@given(st.text())
def test_policy_parser_raises_only_policy_error(text):
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    assert policy.mode in ("enforce", "testing", "none") and policy.max_age <= 31557600


@given(st.lists(st.text()))
def test_txt_parser_never_raises(records):
    result = parse_txt(records)
    assert result is None or result.isalnum()


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_xtext_round_trip(text):
    encoded = xtext(text)
    assert all("!" <= c <= "~" and c != "=" for c in encoded)
    assert xtext_decode(encoded) == text


@given(st.text())
def test_utf8_addr_xtext_is_printable_ascii(text):
    encoded = utf8_addr_xtext(text)
    assert encoded.isascii() and all("!" <= c <= "~" for c in encoded)
    assert "+" not in encoded and "=" not in encoded


@given(st.integers(200, 599), st.text())
def test_reply_status_is_a_status_of_the_reply_class(code, text):
    status = reply_status(code, text)
    klass, subject, detail = status.split(".")
    assert klass == str(code)[0] and subject.isdigit() and detail.isdigit()


@settings(max_examples=50)
@given(
    diagnostic=st.text(),
    address=st.text(min_size=1, max_size=80).filter(lambda a: "\r" not in a and "\n" not in a),
    original=st.binary(max_size=2000),
    full=st.booleans(),
)
def test_reports_are_well_formed_for_any_input(diagnostic, address, original, full):
    raw = build_dsn(
        reporting_mta="mx.example.test",
        sender="a@example.test",
        queue_id="q",
        envid=None,
        arrival=0.0,
        recipients=[
            ReportedRecipient(
                address, "failed", "5.0.0", remote_mta="r.test", diagnostic=diagnostic
            )
        ],
        original=original.replace(b"\r", b"").replace(b"\n", b"\r\n"),
        full=full,
        now=0.0,
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) < 998 for line in head.split(b"\r\n"))
    assert raw.endswith(b"--\r\n")


@given(st.binary(max_size=500))
def test_fixups_always_leave_date_and_message_id(data):
    data = data.replace(b"\r", b"").replace(b"\n", b"\r\n")
    fixed = submission_fixups(data, "mx.example.test", now=0.0)
    assert header_field(fixed, "Date") is not None
    assert header_field(fixed, "Message-ID") is not None
