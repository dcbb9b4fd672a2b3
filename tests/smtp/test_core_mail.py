"""Core: MAIL and RCPT -- paths, ESMTP parameters (SIZE, BODY, SMTPUTF8, DSN, REQUIRETLS,
AUTH), sequence and the recipient limit."""

from __future__ import annotations

import pytest

from postroom.smtp.address import Address
from postroom.smtp.params import MailParams, RcptParams
from postroom.smtp.reply import RECIPIENT_OK, RELAY_DENIED
from postroom.smtp.server import Mail, Rcpt
from tests.smtp.core import Driver, codes


def ehlo(**options: object) -> Driver:
    d = Driver(**options)
    d.send(b"EHLO client.example\r\n")
    return d


def mail(d: Driver, line: bytes) -> str:
    return codes(d.send(line + b"\r\n"))[-1]


def test_mail_before_ehlo_is_a_sequence_error():
    d = Driver()
    assert mail(d, b"MAIL FROM:<a@example.org>") == "503 5.5.1"


def test_nested_mail_is_refused():
    d = ehlo()
    assert mail(d, b"MAIL FROM:<a@example.org>") == "250 2.1.0"
    assert mail(d, b"MAIL FROM:<a@example.org>") == "503 5.5.1"


def test_submission_needs_auth_before_mail():
    d = ehlo(auth_required=True)
    assert mail(d, b"MAIL FROM:<a@example.org>") == "530 5.7.0"


@pytest.mark.parametrize(
    "path, expected",
    [
        (b"<a@example.org>", Address("a", "example.org")),
        (b"<A.B@EXAMPLE.Org>", Address("A.B", "example.org")),
        (b'<"john.doe"@example.org>', Address("john.doe", "example.org")),
        (b'<"john doe"@example.org>', Address('"john doe"', "example.org")),
        (b"<@relay.example,@other.example:a@example.org>", Address("a", "example.org")),
        (b"<a@[192.0.2.1]>", Address("a", "[192.0.2.1]")),
        (b"<a@[IPv6:2001:db8::1]>", Address("a", "[ipv6:2001:db8::1]")),
        (b" <a@example.org>", Address("a", "example.org")),  # common "MAIL FROM: <x>"
        (b"<>", None),
    ],
)
def test_valid_reverse_paths(path, expected):
    d = ehlo()
    assert mail(d, b"MAIL FROM:" + path) == "250 2.1.0"
    event = next(e for e in d.events if isinstance(e, Mail))
    assert event.sender == expected


@pytest.mark.parametrize(
    "line",
    [
        b"MAIL FROM:a@example.org",  # no brackets
        b"MAIL FROM:<a@example.org",
        b"MAIL FROM:<a>",
        b"MAIL FROM:<a@>",
        b"MAIL FROM:<@example.org>",
        b"MAIL FROM:<a..b@example.org>",
        b"MAIL FROM:<a@example..org>",
        b"MAIL FROM:<a@-example.org>",
        b"MAIL FROM:<a@example.org.>",
        b"MAIL FROM:<a b@example.org>",
        b"MAIL FROM:<a@[300.1.1.1]>",
        b"MAIL FROM:<a@[IPv6:zz::1]>",
        b'MAIL FROM:<"a\x01"@example.org>',
    ],
)
def test_invalid_reverse_paths(line):
    d = ehlo()
    assert mail(d, line) in ("501 5.1.7", "501 5.5.2", "501 5.5.4")
    assert d.core.transaction is None


def test_path_length_limits():
    d = ehlo()
    assert mail(d, b"MAIL FROM:<" + b"a" * 65 + b"@example.org>") == "501 5.1.7"
    assert mail(d, b"MAIL FROM:<" + b"a" * 64 + b"@example.org>") == "250 2.1.0"
    d = ehlo()
    long_domain = b".".join([b"d" * 60] * 4) + b".org"  # 248 octets, path over 256
    assert mail(d, b"MAIL FROM:<" + b"a" * 10 + b"@" + long_domain + b">") == "501 5.1.7"


def test_mail_syntax_without_from():
    d = ehlo()
    assert mail(d, b"MAIL TO:<a@example.org>") == "501 5.5.4"
    assert mail(d, b"MAIL") == "501 5.5.4"


def test_all_mail_parameters_are_parsed_and_kept():
    d = ehlo(secure=True)
    line = (
        b"MAIL FROM:<a@example.org> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS"
        b" ENVID=QQ+2B1+3D2 AUTH=a+40example.org REQUIRETLS"
    )
    assert mail(d, line) == "250 2.1.0"
    event = next(e for e in d.events if isinstance(e, Mail))
    assert event.params == MailParams(
        size=500,
        body="8BITMIME",
        smtputf8=True,
        ret="HDRS",
        envid="QQ+1=2",
        auth="a@example.org",
        requiretls=True,
    )
    assert d.core.transaction is not None and d.core.transaction.params == event.params


@pytest.mark.parametrize(
    "params, code",
    [
        (b"SIZE=abc", "501 5.5.4"),
        (b"SIZE=", "501 5.5.4"),
        (b"SIZE=1 SIZE=2", "501 5.5.4"),
        (b"SIZE=" + b"9" * 21, "501 5.5.4"),
        (b"SIZE=10001", "552 5.3.4"),
        (b"BODY=BINARYMIME", "555 5.5.4"),
        (b"BODY=9BIT", "501 5.5.4"),
        (b"SMTPUTF8=yes", "501 5.5.4"),
        (b"RET=ALL", "501 5.5.4"),
        (b"ENVID=a+zz", "501 5.5.4"),  # hexchar must be two upper-case hex digits
        (b"ENVID=a+2b", "501 5.5.4"),
        (b"ENVID=" + b"x" * 101, "501 5.5.4"),
        (b"ENVID=a+0Ab", "501 5.5.4"),  # decodes to a control character
        (b"REQUIRETLS", "530 5.7.10"),  # not under TLS
        (b"FOO=bar", "555 5.5.4"),
        (b"=bar", "501 5.5.4"),
        (b"SIZE=1=2", "501 5.5.4"),
    ],
)
def test_bad_mail_parameters(params, code):
    d = ehlo()
    assert mail(d, b"MAIL FROM:<a@example.org> " + params) == code
    assert d.core.transaction is None


def test_parameters_need_a_space_after_the_path():
    d = ehlo()
    assert mail(d, b"MAIL FROM:<a@example.org>SIZE=1") == "501 5.5.4"


def test_parameter_keywords_are_case_insensitive():
    d = ehlo()
    assert mail(d, b"MAIL FROM:<a@example.org> size=10 body=7bit") == "250 2.1.0"


def test_non_ascii_address_needs_smtputf8():
    d = ehlo()
    assert mail(d, "MAIL FROM:<jörg@example.org>".encode()) == "553 5.6.7"
    assert mail(d, "MAIL FROM:<jörg@exämple.org> SMTPUTF8".encode()) == "250 2.1.0"
    assert mail(d, "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>".encode()) == "250 2.1.5"
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org>")
    assert mail(d, "RCPT TO:<δοκιμή@example.test>".encode()) == "553 5.6.7"


def test_unicode_line_separators_are_not_address_characters():
    d = ehlo()
    assert mail(d, "MAIL FROM:<a\u2028b@example.org> SMTPUTF8".encode()) == "501 5.1.7"


def test_rcpt_before_mail_is_a_sequence_error():
    d = ehlo()
    assert mail(d, b"RCPT TO:<b@example.test>") == "503 5.5.1"


def test_rcpt_parameters_dsn():
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org> RET=FULL ENVID=id1")
    assert (
        mail(d, b"RCPT TO:<b@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40example.test")
        == "250 2.1.5"
    )
    assert mail(d, b"RCPT TO:<c@example.test> NOTIFY=never") == "250 2.1.5"
    rcpts = [e for e in d.events if isinstance(e, Rcpt)]
    assert rcpts[0].params == RcptParams(
        frozenset({"SUCCESS", "DELAY"}), ("rfc822", "b@example.test")
    )
    assert rcpts[1].params == RcptParams(frozenset({"NEVER"}), None)
    tx = d.core.transaction
    assert tx is not None and [r.params for r in tx.recipients] == [
        rcpts[0].params,
        rcpts[1].params,
    ]


def test_orcpt_utf8_address_type():
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org> SMTPUTF8")
    line = b"RCPT TO:<b@example.test> ORCPT=utf-8;j\\x{F6}rg@example.test"
    assert mail(d, line) == "250 2.1.5"
    rcpt = [e for e in d.events if isinstance(e, Rcpt)][0]
    assert rcpt.params.orcpt == ("utf-8", "jörg@example.test")


@pytest.mark.parametrize(
    "params",
    [
        b"NOTIFY=NEVER,SUCCESS",
        b"NOTIFY=SUCCESS,SUCCESS",
        b"NOTIFY=SOMETIMES",
        b"NOTIFY=",
        b"ORCPT=rfc822",
        b"ORCPT=rfc822;",
        b"ORCPT=;a@b",
        b"ORCPT=rfc822;a+0Ab",
        b"ORCPT=rfc822;" + b"a" * 500,
        b"ORCPT=utf-8;a\\x{D800}b",
        b"ORCPT=utf-8;a\\x{110000}b",
        b"FOO",
    ],
)
def test_bad_rcpt_parameters(params):
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org>")
    assert mail(d, b"RCPT TO:<b@example.test> " + params) in ("501 5.5.4", "555 5.5.4")


def test_postmaster_without_domain_is_accepted_for_policy():
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org>")
    assert mail(d, b"RCPT TO:<PostMaster>") == "250 2.1.5"
    rcpt = [e for e in d.events if isinstance(e, Rcpt)][0]
    assert rcpt.recipient == Address("postmaster", "")


def test_null_path_is_not_a_recipient():
    d = ehlo()
    mail(d, b"MAIL FROM:<a@example.org>")
    assert mail(d, b"RCPT TO:<>") == "501 5.1.3"
    assert mail(d, b"RCPT TO:b@example.test") == "501 5.1.3"
    assert mail(d, b"RCPT FROM:<b@example.test>") == "501 5.5.4"


def test_recipient_limit_is_452_4_5_3():
    d = ehlo(max_recipients=2)
    mail(d, b"MAIL FROM:<a@example.org>")
    out = d.send(
        b"RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
    )
    assert codes(out) == ["250 2.1.5", "250 2.1.5", "452 4.5.3"]
    assert d.core.errors == 0  # a temporary refusal the client is expected to handle


def test_refused_recipients_are_not_kept():
    d = ehlo()
    d.rcpt_reply = lambda e: (
        RELAY_DENIED if e.recipient.domain == "elsewhere.example" else RECIPIENT_OK
    )
    mail(d, b"MAIL FROM:<a@example.org>")
    out = d.send(b"RCPT TO:<x@elsewhere.example>\r\nRCPT TO:<b@example.test>\r\n")
    assert codes(out) == ["554 5.7.1", "250 2.1.5"]
    tx = d.core.transaction
    assert tx is not None and [str(r.address) for r in tx.recipients] == ["b@example.test"]
    assert tx.recipients[0].route == "b@example.test"  # what the glue attached


def test_refused_mail_leaves_no_transaction():
    d = ehlo()
    d.mail_reply = RELAY_DENIED
    assert mail(d, b"MAIL FROM:<a@example.org>") == "554 5.7.1"
    assert d.core.transaction is None
    assert mail(d, b"RCPT TO:<b@example.test>") == "503 5.5.1"
