"""SEARCH keys of RFC 3501 / RFC 9051 / RFC 7162 -> the neutral query tree."""

from __future__ import annotations

from array import array
from datetime import date

import pytest

from postroom.imap.parser import CommandError, parse
from postroom.imap.search import NOTHING, resolve, uses_modseq
from postroom.store.query import (
    All,
    And,
    Body,
    HasFlag,
    Header,
    InternalDate,
    ModSeq,
    Not,
    Or,
    SentDate,
    Size,
    Text,
    UidIn,
)


def search(text: bytes):
    return parse([b"t " + text], []).args


@pytest.mark.parametrize(
    ("text", "query"),
    [
        (b"SEARCH ALL", All()),
        (b"SEARCH UNSEEN", Not(HasFlag("\\Seen"))),
        (b"SEARCH answered", HasFlag("\\Answered")),
        (b'SEARCH SUBJECT "hello world"', Header("subject", "hello world")),
        (b"SEARCH FROM bob BCC x", And((Header("from", "bob"), Header("bcc", "x")))),
        (b"SEARCH HEADER Message-ID <a@b>", Header("message-id", "<a@b>")),
        (b"SEARCH BEFORE 1-Feb-1994", InternalDate("<", date(1994, 2, 1))),
        (b'SEARCH SENTON "29-Dec-2021"', SentDate("=", date(2021, 12, 29))),
        (b"SEARCH SENTSINCE 1-Jan-2020", SentDate(">=", date(2020, 1, 1))),
        (b"SEARCH LARGER 1000", Size(">", 1000)),
        (b"SEARCH SMALLER 10", Size("<", 10)),
        (b"SEARCH BODY x TEXT y", And((Body("x"), Text("y")))),
        (b"SEARCH KEYWORD $Junk", HasFlag("$Junk")),
        (b"SEARCH UNKEYWORD foo", Not(HasFlag("foo"))),
        (
            b"SEARCH OR SEEN (FLAGGED DRAFT)",
            Or((HasFlag("\\Seen"), And((HasFlag("\\Flagged"), HasFlag("\\Draft"))))),
        ),
        (b"SEARCH NOT DELETED", Not(HasFlag("\\Deleted"))),
        (b"SEARCH MODSEQ 620162338", ModSeq(620162338)),
        (b'SEARCH MODSEQ "/flags/\\\\draft" all 620162338', ModSeq(620162338)),
    ],
)
def test_keys(text, query):
    assert search(text).query == query


def test_return_and_charset_parsed():
    args = parse([b"t UID SEARCH RETURN () CHARSET utf-8 UNDELETED"], []).args
    assert args.returns == () and args.charset == "UTF-8"
    assert args.query == Not(HasFlag("\\Deleted"))
    with pytest.raises(CommandError):
        search(b"SEARCH RETURN (BOGUS) ALL")


def test_resolve_session_nodes():
    uids = array("I", [3, 5, 9, 12])
    q = resolve(search(b"SEARCH 2:3 UID 10:* $ RECENT").query, uids, [5, 9], [12])
    assert q == And((
        UidIn(((5, 9),)), UidIn(((10, 12),)), UidIn(((5, 5), (9, 9))), UidIn(((12, 12),)),
    ))  # fmt: skip
    assert resolve(search(b"SEARCH $").query, uids, [], []) == NOTHING
    q = resolve(search(b"SEARCH NEW").query, uids, [], [])
    assert q == And((NOTHING, Not(HasFlag("\\Seen"))))


def test_uses_modseq():
    assert uses_modseq(search(b"SEARCH OR SEEN NOT MODSEQ 5").query)
    assert not uses_modseq(search(b"SEARCH SEEN").query)
