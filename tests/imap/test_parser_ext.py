"""Parsing of the extension commands: MULTIAPPEND (RFC 3502), SORT/THREAD (RFC 5256),
GETQUOTA/GETQUOTAROOT/SETQUOTA (RFC 9208), COMPRESS (RFC 4978); and the framer's bound on
the messages of one APPEND together."""

from __future__ import annotations

import pytest

from postroom.imap.core import Core, Execute, Send, State
from postroom.imap.parser import AppendMessage, CommandError, SetQuota
from postroom.imap.sort import SortArgs, ThreadArgs
from postroom.store.query import All, And, HasFlag, Header, Not
from tests.imap.test_parser import cmd


def test_multiappend():
    a = cmd(
        b'a APPEND Drafts (\\Seen) {3+}\r\none "01-Feb-2020 00:00:00 +0000" {3+}\r\ntwo'
        b" UTF8 (~{5+}\r\nthr\x00e) {4+}\r\nfour\r\n"
    ).args
    assert a.mailbox == b"Drafts"
    assert a.messages == (
        AppendMessage(("\\Seen",), None, b"one"),
        AppendMessage((), 1580515200.0, b"two"),
        AppendMessage((), None, b"thr\x00e"),
        AppendMessage((), None, b"four"),
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND INBOX {1+}\r\nx y\r\n",  # something that is not a message after one
        b"a APPEND INBOX {1+}\r\nx \r\n",  # a trailing space and nothing
        b"a APPEND INBOX {1+}\r\nx (\\Seen)\r\n",  # flags without their message
        b"a SORT (DATE) UTF-8\r\n",  # no search key
        b"a SORT () UTF-8 ALL\r\n",
        b"a SORT (REVERSE) UTF-8 ALL\r\n",
        b"a SORT (COLOR) UTF-8 ALL\r\n",
        b"a SORT DATE UTF-8 ALL\r\n",
        b"a THREAD JWZ UTF-8 ALL\r\n",
        b"a THREAD REFERENCES ALL\r\n",
        b'a SETQUOTA "" (STORAGE)\r\n',
        b'a SETQUOTA "" STORAGE 1\r\n',
        b"a GETQUOTA\r\n",
        b"a COMPRESS\r\n",
    ],
)
def test_malformed_extension_commands(line):
    with pytest.raises(CommandError) as err:
        cmd(line)
    assert err.value.tag == "a"


def test_sort_and_thread():
    s = cmd(b"a UID SORT (REVERSE DATE subject REVERSE displayfrom) utf-8 UNSEEN NOT DELETED\r\n")
    assert s.name == "UID SORT"
    assert s.args == SortArgs(
        (("DATE", True), ("SUBJECT", False), ("DISPLAYFROM", True)),
        "UTF-8",
        And((Not(HasFlag("\\Seen")), Not(HasFlag("\\Deleted")))),
    )
    t = cmd(b"a THREAD REFERENCES US-ASCII SUBJECT hello\r\n")
    assert t.args == ThreadArgs("REFERENCES", "US-ASCII", Header("subject", "hello"))
    assert cmd(b"a UID THREAD orderedsubject UTF-8 ALL\r\n").args.query == All()


def test_quota_and_compress():
    assert cmd(b'a GETQUOTA ""\r\n').args == b""
    assert cmd(b"a GETQUOTAROOT INBOX\r\n").args == b"INBOX"
    assert cmd(b'a SETQUOTA "" (STORAGE 512 message 10)\r\n').args == SetQuota(
        b"", (("STORAGE", 512), ("MESSAGE", 10))
    )
    assert cmd(b'a SETQUOTA "" ()\r\n').args == SetQuota(b"", ())
    assert cmd(b"a COMPRESS deflate\r\n").args == "DEFLATE"


def test_extension_commands_need_their_state():
    core = Core(message_size=1000)
    core.feed(b'a SORT (DATE) UTF-8 ALL\r\nb COMPRESS DEFLATE\r\nc GETQUOTA ""\r\n')
    assert [core.next_event() for _ in range(3)] == [
        Send(b"a BAD Log in first\r\n"),
        Send(b"b BAD Log in first\r\n"),
        Send(b"c BAD Log in first\r\n"),
    ]
    core.set_state(State.AUTHENTICATED)
    core.feed(b"d THREAD REFERENCES UTF-8 ALL\r\ne GETQUOTAROOT INBOX\r\n")
    assert core.next_event() == Send(b"d BAD No mailbox selected\r\n")
    assert isinstance(core.next_event(), Execute)


def test_multiappend_messages_share_one_size_bound():
    """Every message is held in memory until the command is complete: each is bounded by
    the message size limit, and all of one APPEND together by that limit plus the 256 KiB
    command bound."""
    core = Core(message_size=1000)
    core.set_state(State.AUTHENTICATED)
    core.feed(b"a APPEND INBOX {2000}\r\n")
    ev = core.next_event()
    assert isinstance(ev, Send) and ev.data.startswith(b"a NO [TOOBIG]")
    core.feed(b"b APPEND INBOX {900}\r\n")
    sent = 0
    while True:
        ev = core.next_event()
        if ev != Send(b"+ Ready for literal data\r\n"):
            break
        sent += 1
        core.feed(b"x" * 900 + b" {900}\r\n")
    assert isinstance(ev, Send) and ev.data.startswith(b"b BAD [TOOBIG] Command too large")
    assert 250 < sent < 300  # (256 KiB + 1,000) / 900 bytes
    core.feed(b"c NOOP\r\n")
    assert isinstance(core.next_event(), Execute)
