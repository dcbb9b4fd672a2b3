"""Core: greeting, EHLO/HELO, NOOP/RSET/VRFY/HELP/QUIT, unknown commands and session limits."""

from __future__ import annotations

from postroom.smtp.reply import AUTH_FAILED
from postroom.smtp.server import MAX_AUTH_LINE, MAX_COMMAND_LINE, Hello, Quit, Refused
from tests.smtp.core import Driver, codes


def test_greeting_names_the_host():
    d = Driver()
    assert d.greeting == b"220 mx.example.test ESMTP postroom\r\n"


def test_ehlo_advertises_exactly_what_works_before_tls():
    d = Driver(mechanisms=())
    out = d.send(b"EHLO client.example\r\n").decode()
    assert out.split("\r\n")[:-1] == [
        "250-mx.example.test",
        "250-PIPELINING",
        "250-SIZE 10000",
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-ENHANCEDSTATUSCODES",
        "250-STARTTLS",
        "250-CHUNKING",
        "250-DSN",
        "250 LIMITS RCPTMAX=5",
    ]
    assert d.events == [Hello("client.example", True)]


def test_ehlo_under_tls_offers_auth_and_requiretls_not_starttls():
    d = Driver(secure=True, mechanisms=("PLAIN", "LOGIN", "SCRAM-SHA-256"))
    lines = d.send(b"EHLO client.example\r\n").decode().split("\r\n")
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-256" in lines
    assert "250-REQUIRETLS" in lines
    assert not any("STARTTLS" in line for line in lines)


def test_helo_is_plain_smtp():
    d = Driver()
    assert d.send(b"HELO client.example\r\n") == b"250 mx.example.test\r\n"
    assert d.core.esmtp is False
    # RFC 5321: service extensions need EHLO
    assert codes(d.send(b"MAIL FROM:<a@example.org> SIZE=10\r\n")) == ["555 5.5.4"]


def test_helo_name_is_never_echoed():
    d = Driver()
    out = d.send(b"EHLO evil<script>\r\n")
    assert b"evil" not in out and codes(out) == ["250"]


def test_ehlo_needs_an_argument():
    d = Driver()
    assert codes(d.send(b"EHLO\r\n")) == ["501 5.5.4"]
    assert codes(d.send(b"EHLO two words\r\n")) == ["501 5.5.4"]


def test_ehlo_resets_the_transaction():
    d = Driver()
    d.ready()
    d.send(b"EHLO again.example\r\n")
    assert d.core.transaction is None


def test_noop_rset_vrfy_help_quit():
    d = Driver()
    assert codes(d.send(b"NOOP\r\nNOOP anything\r\n")) == ["250 2.0.0", "250 2.0.0"]
    d.ready()
    assert codes(d.send(b"RSET\r\n")) == ["250 2.0.0"]
    assert d.core.transaction is None
    assert codes(d.send(b"RSET x\r\n")) == ["501 5.5.4"]
    assert codes(d.send(b"VRFY root\r\n")) == ["252 2.5.0"]
    assert codes(d.send(b"VRFY\r\n")) == ["501 5.5.4"]
    assert codes(d.send(b"HELP\r\n")) == ["214 2.0.0"]
    assert codes(d.send(b"EXPN staff\r\n")) == ["502 5.5.1"]
    assert codes(d.send(b"QUIT\r\n")) == ["221 2.0.0"]
    assert d.events[-1] == Quit("quit") and d.core.closed
    assert d.send(b"NOOP\r\n") == b""  # nothing is read after QUIT


def test_commands_are_case_insensitive_and_accept_bare_lf():
    d = Driver()
    assert codes(d.send(b"ehlo client.example\nnoop\n")) == ["250", "250 2.0.0"]


def test_unknown_empty_and_garbage_commands():
    d = Driver()
    assert codes(d.send(b"FOO\r\n\r\n\xff\xfe\r\n")) == ["500 5.5.2"] * 3
    assert all(isinstance(e, Refused) for e in d.events)


def test_nul_and_bare_cr_in_a_command_are_refused():
    d = Driver()
    assert codes(d.send(b"NOOP a\x00b\r\nNOOP a\rb\r\n")) == ["501 5.5.2", "501 5.5.2"]


def test_invalid_utf8_in_arguments_is_refused():
    d = Driver()
    assert codes(d.send(b"EHLO \xc3\x28\r\n")) == ["501 5.5.2"]


def test_command_line_over_the_limit_is_500_5_5_6_and_skipped():
    d = Driver()
    long_line = b"NOOP " + b"x" * MAX_COMMAND_LINE + b"\r\n"
    assert codes(d.send(long_line + b"NOOP\r\n")) == ["500 5.5.6", "250 2.0.0"]


def test_over_long_line_is_not_buffered_while_it_streams():
    d = Driver()
    assert d.send(b"NOOP " + b"x" * 5000) == b""
    assert len(d.core._in) == 0  # dropped, not kept
    assert d.send(b"y" * 5000) == b""
    assert codes(d.send(b"\r\nNOOP\r\n")) == ["500 5.5.6", "250 2.0.0"]


def test_auth_lines_may_be_longer_up_to_12288():
    d = Driver(secure=True, mechanisms=("PLAIN",))
    d.send(b"EHLO c.example\r\n")
    seen = []
    d.auth = lambda event: (seen.append(event), d.core.answer(AUTH_FAILED))
    initial = b"QUFB" * ((MAX_COMMAND_LINE + 100) // 4)
    assert codes(d.send(b"AUTH PLAIN " + initial + b"\r\n")) == ["535 5.7.8"]
    assert len(seen) == 1
    too_long = b"AUTH PLAIN " + b"QUFB" * (MAX_AUTH_LINE // 4) + b"\r\n"
    assert codes(d.send(too_long)) == ["500 5.5.6"]


def test_too_many_errors_closes_with_421():
    d = Driver(max_errors=3)
    out = d.send(b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    assert codes(out) == ["500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"]
    assert d.core.closed and d.events[-1] == Quit("errors")


def test_too_many_commands_without_mail_closes_with_421():
    d = Driver(max_junk=3)
    out = d.send(b"NOOP\r\nNOOP\r\nRSET\r\nNOOP\r\nNOOP\r\n")
    assert codes(out) == ["250 2.0.0"] * 3 + ["421 4.7.0"]
    assert d.events[-1] == Quit("junk")


def test_a_delivered_message_resets_the_junk_count():
    d = Driver(max_junk=3)
    d.send(b"NOOP\r\nNOOP\r\n")
    d.ready()
    d.send(b"DATA\r\nhi\r\n.\r\n")
    assert d.core.junk == 0


def test_http_requests_are_cut_off():
    d = Driver()
    out = d.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert codes(out) == ["421 4.7.0"] and d.core.closed


def test_timeout_and_shutdown_replies():
    d = Driver()
    d.core.timed_out()
    assert codes(d.core.data_to_send()) == ["421 4.4.2"]
    assert d.core.next_event() == Quit("timeout")
    d = Driver()
    d.core.shutting_down()
    assert codes(d.core.data_to_send()) == ["421 4.3.2"]


def test_pipelined_commands_are_all_answered_in_order():
    d = Driver()
    out = d.send(
        b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
        b"RCPT TO:<c@example.test>\r\nDATA\r\n"
    )
    assert codes(out)[1:] == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"]
    assert out.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")


def test_partial_lines_wait_for_more_data():
    d = Driver()
    assert d.send(b"NO") == b""
    assert d.send(b"OP\r") == b""
    assert codes(d.send(b"\n")) == ["250 2.0.0"]
