"""The TRANSACTION and UPDATE states of the core: STAT, LIST, UIDL, RETR, TOP, DELE, RSET,
NOOP, QUIT."""

from __future__ import annotations

import pytest

from postroom.pop3.core import Close, Retrieve, State, Update
from tests.pop3.util import events, logged_in, one, reply


def test_stat_and_list():
    core = logged_in()
    assert reply(core, b"STAT\r\n") == b"+OK 3 380\r\n"
    assert reply(core, b"LIST\r\n") == (
        b"+OK 3 messages (380 octets)\r\n1 100\r\n2 250\r\n3 30\r\n.\r\n"
    )
    assert reply(core, b"LIST 2\r\n") == b"+OK 2 250\r\n"


@pytest.mark.parametrize("arg", [b"0", b"4", b"99999999999999999999"])
def test_no_such_message(arg):
    core = logged_in()
    for command in (b"LIST ", b"UIDL ", b"RETR ", b"DELE "):
        assert reply(core, command + arg + b"\r\n").startswith(b"-ERR no such message")
    assert core.bad_commands == 0  # a wrong number is not abuse


@pytest.mark.parametrize("arg", [b"", b" ", b"x", b"1 2", b"-1", "\u0661".encode()])
def test_bad_message_number_syntax(arg):
    core = logged_in()
    assert reply(core, b"RETR " + arg + b"\r\n").startswith(b"-ERR")


def test_uidl_from_uidvalidity_and_uid():
    core = logged_in(uidvalidity=1234)
    assert reply(core, b"UIDL\r\n") == (
        b"+OK unique-id listing follows\r\n1 1234.10\r\n2 1234.11\r\n3 1234.15\r\n.\r\n"
    )
    assert reply(core, b"UIDL 3\r\n") == b"+OK 3 1234.15\r\n"


def test_dele_hides_message_and_rset_restores():
    core = logged_in()
    assert reply(core, b"DELE 2\r\n") == b"+OK message 2 deleted\r\n"
    assert reply(core, b"DELE 2\r\n") == b"-ERR message 2 is deleted\r\n"
    assert reply(core, b"STAT\r\n") == b"+OK 2 130\r\n"
    assert reply(core, b"LIST\r\n") == b"+OK 2 messages (130 octets)\r\n1 100\r\n3 30\r\n.\r\n"
    assert b"2 7.11" not in reply(core, b"UIDL\r\n")
    for command in (b"LIST 2\r\n", b"UIDL 2\r\n", b"RETR 2\r\n", b"TOP 2 0\r\n"):
        assert reply(core, command).startswith(b"-ERR")
    assert reply(core, b"RSET\r\n") == b"+OK maildrop has 3 messages (380 octets)\r\n"
    assert reply(core, b"STAT\r\n") == b"+OK 3 380\r\n"


def test_retr_event_and_reply():
    core = logged_in()
    event = one(core, b"RETR 1\r\n")
    assert event == Retrieve(1, 10, None, mark_seen=True)
    assert events(core, b"NOOP\r\n") == []  # waits for the message
    answer = core.retrieved(b"Subject: x\n\n.dot\nend")
    assert answer.data == b"+OK 23 octets\r\nSubject: x\r\n\r\n..dot\r\nend\r\n.\r\n"
    assert reply(core, b"") == b"+OK\r\n"
    # retrieved once: already seen for the rest of the session
    assert one(core, b"RETR 1\r\n") == Retrieve(1, 10, None, mark_seen=False)
    core.retrieved(b"x")
    assert one(core, b"RETR 2\r\n") == Retrieve(2, 11, None, mark_seen=False)  # was \Seen


def test_retrieve_failed():
    core = logged_in()
    one(core, b"RETR 3\r\n")
    assert core.retrieve_failed().data.startswith(b"-ERR")
    assert reply(core, b"NOOP\r\n") == b"+OK\r\n"


def test_top():
    core = logged_in()
    assert one(core, b"TOP 1 2\r\n") == Retrieve(1, 10, 2, mark_seen=False)
    answer = core.retrieved(b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n")
    assert answer.data == b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n"
    one(core, b"TOP 1 0\r\n")
    assert core.retrieved(b"A: 1\r\n\r\nbody\r\n").data.endswith(b"\r\nA: 1\r\n\r\n.\r\n")


@pytest.mark.parametrize("arg", [b"", b"1", b"1 x", b"1 -1", b"1 2 3"])
def test_top_syntax(arg):
    assert reply(logged_in(), b"TOP " + arg + b"\r\n").startswith(b"-ERR")


def test_noop_and_rset_take_no_argument():
    core = logged_in()
    assert reply(core, b"NOOP x\r\n").startswith(b"-ERR")
    assert reply(core, b"RSET x\r\n").startswith(b"-ERR")
    assert reply(core, b"STAT x\r\n").startswith(b"-ERR")


def test_capa_in_transaction_has_no_login_commands():
    data = reply(logged_in(), b"CAPA\r\n")
    assert b"\r\nTOP\r\n" in data and b"\r\nUIDL\r\n" in data
    assert b"USER" not in data.replace(b"UTF8 USER", b"") and b"SASL" not in data
    assert b"STLS" not in data


@pytest.mark.parametrize(
    "command", [b"USER x", b"PASS x", b"AUTH PLAIN", b"STLS", b"APOP a b", b"UTF8"]
)
def test_authorization_commands_refused_in_transaction(command):
    assert reply(logged_in(), command + b"\r\n").startswith(b"-ERR")


def test_quit_enters_update_with_marked_uids():
    core = logged_in()
    reply(core, b"DELE 3\r\n")
    reply(core, b"DELE 1\r\n")
    assert one(core, b"QUIT\r\nNOOP\r\n") == Update((10, 15))
    assert core.state is State.UPDATE
    assert events(core) == []
    answer = core.update_done(True, 2)
    assert isinstance(answer, Close) and answer.data.startswith(b"+OK")
    assert b"2 messages deleted" in answer.data
    assert core.state is State.CLOSED
    assert events(core, b"NOOP\r\n") == []


def test_quit_after_rset_deletes_nothing():
    core = logged_in()
    reply(core, b"DELE 1\r\n")
    reply(core, b"RSET\r\n")
    assert one(core, b"QUIT\r\n") == Update(())


def test_update_failure_is_reported():
    core = logged_in()
    reply(core, b"DELE 1\r\n")
    one(core, b"QUIT\r\n")
    answer = core.update_done(False, 0)
    assert answer.data == b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"


def test_keywords_are_case_insensitive():
    core = logged_in()
    assert reply(core, b"stat\r\n") == b"+OK 3 380\r\n"
    assert reply(core, b"LiSt 1\r\n") == b"+OK 1 100\r\n"
