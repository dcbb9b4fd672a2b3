"""Command parsing: every command's arguments, and BAD with a tag for malformed ones."""

from __future__ import annotations

import pytest

from postroom.imap.framer import Command as Framed
from postroom.imap.framer import Framer, post_auth
from postroom.imap.parser import (
    Append,
    CommandError,
    CopyArgs,
    Create,
    ListArgs,
    Login,
    Select,
    StatusArgs,
    StoreArgs,
    parse,
)
from postroom.imap.seqset import STAR, SeqSet


def cmd(data: bytes):
    f = Framer(post_auth(1 << 20))
    f.feed(data)
    ev = f.next_event()
    while not isinstance(ev, Framed):
        ev = f.next_event()
    return parse(ev.lines, ev.literals)


def test_simple_and_case_insensitive():
    c = cmd(b"A1 noop\r\n")
    assert (c.tag, c.name, c.args) == ("A1", "NOOP", None)
    assert cmd(b"x uid fetch 1 uid\r\n").name == "UID FETCH"


def test_login_forms():
    assert cmd(b'a LOGIN bob "p w"\r\n').args == Login(b"bob", b"p w")
    assert cmd(b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\n").args == Login(b"bob", b"pw")


def test_authenticate_sasl_ir():
    c = cmd(b"a AUTHENTICATE PLAIN AGJvYgBwdw==\r\n")
    assert (c.args.mechanism, c.args.initial) == ("PLAIN", b"AGJvYgBwdw==")
    assert cmd(b"a AUTHENTICATE PLAIN =\r\n").args.initial == b"="
    assert cmd(b"a AUTHENTICATE SCRAM-SHA-256\r\n").args.initial is None


def test_select_qresync():
    c = cmd(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n")
    assert isinstance(c.args, Select)
    q = c.args.qresync
    assert (q.uidvalidity, q.modseq) == (67890007, 20050715194045000)
    assert q.known_uids == SeqSet(((41, 41), (43, 211), (214, 541)))
    assert cmd(b"a EXAMINE foo (CONDSTORE)\r\n").args == Select(b"foo", True, None)


def test_create_special_use():
    assert cmd(b"a CREATE MySent (USE (\\sent))\r\n").args == Create(b"MySent", ("\\Sent",))
    with pytest.raises(CommandError):
        cmd(b"a CREATE x (USE (\\Bogus))\r\n")


def test_list_forms():
    c = cmd(b'a LIST "" *\r\n')
    assert c.args == ListArgs(b"", (b"*",))
    c = cmd(b'a LIST (SUBSCRIBED) "" ("INBOX" "foo/%") RETURN (CHILDREN STATUS (MESSAGES))\r\n')
    assert c.args.selection == {"SUBSCRIBED"}
    assert c.args.patterns == (b"INBOX", b"foo/%")
    assert c.args.returns == {"CHILDREN", "STATUS"}
    assert c.args.status_items == ("MESSAGES",)
    assert c.args.extended
    assert cmd(b'a LSUB "" %\r\n').args.lsub


def test_status_append_store_copy():
    assert cmd(b"a STATUS INBOX (MESSAGES UNSEEN SIZE)\r\n").args == StatusArgs(
        b"INBOX", ("MESSAGES", "UNSEEN", "SIZE")
    )
    a = cmd(b'a APPEND Drafts (\\Draft) "05-Jan-2021 10:11:12 -0130" ~{3+}\r\na\0b\r\n').args
    assert isinstance(a, Append) and len(a.messages) == 1
    m = a.messages[0]
    assert m.data == b"a\0b" and m.flags == ("\\Draft",)
    assert m.date == 1609841472.0 + 5400
    s = cmd(b"a UID STORE 1:* -FLAGS.SILENT \\Seen $Junk\r\n").args
    assert s == StoreArgs(SeqSet(((1, STAR),)), "-", True, ("\\Seen", "$Junk"))
    assert cmd(b"a MOVE $ Trash\r\n").args == CopyArgs(SeqSet(saved=True), b"Trash")


@pytest.mark.parametrize(
    "line",
    [
        b"a FOO\r\n",
        b"a UID NOOP\r\n",
        b"a LOGIN bob\r\n",
        b"a NOOP extra\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 0 FLAGS\r\n",
        b"a FETCH 1 BODY[0]\r\n",
        b"a FETCH 1 BODY[1.MIME.X]\r\n",
        b"a FETCH 1 BINARY[HEADER]\r\n",
        b"a FETCH 1:2 (FLAGS) (VANISHED)\r\n",
        b"a STORE 1 FLAGS (\\Bogus)\r\n",
        b'a SELECT "unterminated\r\n',
        b"a APPEND INBOX (\\Seen) hello\r\n",
        b'a APPEND INBOX "31-Foo-2020 00:00:00 +0000" {1+}\r\nx\r\n',
        b"a EXPUNGE 1\r\n",
        b"a UID EXPUNGE\r\n",
        b"a SEARCH\r\n",
        b"a SEARCH FROB\r\n",
        b"a SEARCH " + b"NOT " * 100 + b"ALL\r\n",
        b"a STATUS INBOX (BOGUS)\r\n",
        b'a LIST (RECURSIVEMATCH) "" *\r\n',
    ],
)
def test_malformed_gets_tagged_error(line):
    with pytest.raises(CommandError) as info:
        cmd(line)
    assert info.value.tag == "a"


def test_missing_tag():
    with pytest.raises(CommandError) as info:
        cmd(b"(x NOOP\r\n")
    assert info.value.tag is None


def test_fetch_items_and_labels():
    c = cmd(
        b"a FETCH 1:3 (FAST BODY[1.2.MIME] BINARY.SIZE[2] RFC822.HEADER MODSEQ)"
        b" (CHANGEDSINCE 12345 VANISHED)\r\n"
    )
    labels = [i.label for i in c.args.items]
    assert labels == [
        b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"BODY[1.2.MIME]", b"BINARY.SIZE[2]",
        b"RFC822.HEADER", b"MODSEQ",
    ]  # fmt: skip
    assert c.args.changedsince == 12345 and c.args.vanished
    peek = cmd(b"a FETCH 1 BODY.PEEK[]\r\n").args.items[0]
    assert not peek.sets_seen and peek.label == b"BODY[]"
    body = cmd(b"a FETCH 1 BODY[TEXT]<10.20>\r\n").args.items[0]
    assert body.sets_seen and body.partial == (10, 20) and body.label == b"BODY[TEXT]<10>"
