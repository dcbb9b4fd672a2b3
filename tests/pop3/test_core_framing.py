"""Line framing and bounds of the core: partial input, pipelining, line length, error limits."""

from __future__ import annotations

import base64

from postroom.pop3.core import (
    MAX_BAD_COMMANDS,
    MAX_COMMAND_LINE,
    MAX_SASL_LINE,
    Close,
    Reply,
    SaslResponse,
    SaslStart,
    State,
)
from tests.pop3.util import events, logged_in, make_core, one, reply


def test_partial_lines_wait_for_more():
    core = logged_in()
    assert events(core, b"ST") == []
    assert events(core, b"AT\r") == []
    assert reply(core, b"\n") == b"+OK 3 380\r\n"


def test_bare_lf_is_accepted():
    assert reply(logged_in(), b"STAT\n") == b"+OK 3 380\r\n"


def test_pipelined_commands_answered_in_order():
    core = logged_in()
    got = events(core, b"STAT\r\nDELE 1\r\nLIST 1\r\nRSET\r\nNOOP\r\n")
    assert [e.data for e in got] == [
        b"+OK 3 380\r\n",
        b"+OK message 1 deleted\r\n",
        b"-ERR message 1 is deleted\r\n",
        b"+OK maildrop has 3 messages (380 octets)\r\n",
        b"+OK\r\n",
    ]


def test_pipelining_stops_at_io_and_resumes():
    core = logged_in()
    got = events(core, b"STAT\r\nRETR 1\r\nSTAT\r\n")
    assert len(got) == 2 and got[1].uid == 10
    core.retrieved(b"x\r\n")
    assert reply(core, b"") == b"+OK 3 380\r\n"


def test_line_too_long_gets_error_and_session_continues():
    core = logged_in()
    line = b"LIST " + b"1" * (MAX_COMMAND_LINE - 6) + b"\r\n"
    assert len(line) > MAX_COMMAND_LINE
    assert reply(core, line) == b"-ERR line too long\r\n"
    assert reply(core, b"STAT\r\n") == b"+OK 3 380\r\n"


def test_command_of_exactly_255_octets_is_accepted():
    core = make_core()
    line = b"USER " + b"u" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(line) == MAX_COMMAND_LINE
    assert reply(core, line).startswith(b"+OK")


def test_endless_line_is_discarded_in_bounded_memory():
    core = logged_in()
    for _ in range(50):
        assert events(core, b"x" * 65536) == []
        assert len(core._buffer) <= MAX_SASL_LINE + 65536
    assert reply(core, b"\r\n") == b"-ERR line too long\r\n"
    assert reply(core, b"NOOP\r\n") == b"+OK\r\n"


def test_auth_lines_may_exceed_255_octets():
    core = make_core()
    initial = b"\0user\0" + b"p" * 400
    event = one(core, b"AUTH PLAIN " + base64.b64encode(initial) + b"\r\n")
    assert event == SaslStart("PLAIN", initial)
    core.sasl_challenge(b"more")
    long_response = b"r" * 3000
    assert one(core, base64.b64encode(long_response) + b"\r\n") == SaslResponse(long_response)


def test_too_many_bad_commands_close():
    core = make_core()
    for i in range(MAX_BAD_COMMANDS):
        event = one(core, b"BOGUS\r\n")
        assert isinstance(event, Close) == (i == MAX_BAD_COMMANDS - 1)
        assert event.data.startswith(b"-ERR")
    assert core.state is State.CLOSED


def test_control_characters_and_invalid_utf8_rejected():
    core = make_core()
    assert reply(core, b"US\x00ER bob\r\n").startswith(b"-ERR")
    assert reply(core, b"USER b\rob\r\n").startswith(b"-ERR")
    assert reply(core, b"USER \xff\xfe\r\n").startswith(b"-ERR")
    assert reply(core, b"\r\n").startswith(b"-ERR")
    assert core.bad_commands == 4


def test_error_replies_do_not_echo_input():
    data = reply(make_core(), b"<script>\r\n")
    assert b"script" not in data and isinstance(one(make_core(), b"X\r\n"), Reply)
