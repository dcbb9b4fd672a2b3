"""The SORT/THREAD answer cache: an answer is reused only for the same mailbox, command,
matched UIDs and (for sequence numbers) positions, so appends, expunges and flag changes
that alter the matches are always seen; its size stays bounded."""

from __future__ import annotations

from postroom.imap import ordering
from tests.imap.conftest import deliver, message
from tests.imap.raw import untagged


def test_append_is_seen_by_a_repeated_sort_and_thread(connect, srv):
    deliver(srv, message("beta"))
    deliver(srv, message("gamma"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    for _ in range(2):
        assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 1 2\r\n"]
        assert untagged(raw.cmd("UID THREAD REFERENCES UTF-8 ALL")) == [b"* THREAD (1)(2)\r\n"]
    deliver(srv, message("alpha"))
    raw.cmd("NOOP")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 3 1 2\r\n"]
    assert untagged(raw.cmd("UID THREAD REFERENCES UTF-8 ALL")) == [b"* THREAD (1)(2)(3)\r\n"]


def test_flag_change_altering_the_matches_is_seen(connect, srv):
    deliver(srv, message("beta"))
    deliver(srv, message("alpha"))
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 UNSEEN")) == [b"* SORT 2 1\r\n"]
    raw.cmd("UID STORE 2 +FLAGS.SILENT (\\Seen)")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 UNSEEN")) == [b"* SORT 1\r\n"]
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 2 1\r\n"]


def test_expunge_shifts_sequence_numbers_not_uids(connect, srv):
    for subject in ("c", "b", "a"):
        deliver(srv, message(subject))
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("SORT (SUBJECT) UTF-8 UID 2:3")) == [b"* SORT 3 2\r\n"]
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 UID 2:3")) == [b"* SORT 3 2\r\n"]
    assert untagged(raw.cmd("THREAD ORDEREDSUBJECT UTF-8 UID 2:3")) == [b"* THREAD (2)(3)\r\n"]
    raw.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    raw.cmd("EXPUNGE")
    assert untagged(raw.cmd("SORT (SUBJECT) UTF-8 UID 2:3")) == [b"* SORT 2 1\r\n"]
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 UID 2:3")) == [b"* SORT 3 2\r\n"]
    assert untagged(raw.cmd("THREAD ORDEREDSUBJECT UTF-8 UID 2:3")) == [b"* THREAD (1)(2)\r\n"]
    assert untagged(raw.cmd("UID THREAD ORDEREDSUBJECT UTF-8 UID 2:3")) == [b"* THREAD (2)(3)\r\n"]


def test_other_mailboxes_and_criteria_get_their_own_answers(connect, srv):
    deliver(srv, message("beta", body="x" * 2000))
    deliver(srv, message("alpha"))
    deliver(srv, message("zulu"), mailbox="Drafts")
    raw = connect()
    raw.cmd("SELECT INBOX")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 2 1\r\n"]
    assert untagged(raw.cmd("UID SORT (REVERSE SUBJECT) UTF-8 ALL")) == [b"* SORT 1 2\r\n"]
    assert untagged(raw.cmd("UID SORT (SIZE) UTF-8 ALL")) == [b"* SORT 2 1\r\n"]
    raw.cmd("SELECT Drafts")
    assert untagged(raw.cmd("UID SORT (SUBJECT) UTF-8 ALL")) == [b"* SORT 1\r\n"]


class _Store:
    """Only its identity matters to the cache (answers are kept per store)."""


def test_answers_are_bounded(monkeypatch):
    store = _Store()
    monkeypatch.setattr(ordering, "CACHE_ANSWERS", 3)
    monkeypatch.setattr(ordering, "CACHE_ANSWER_BYTES", 100)
    for n in range(5):
        ordering._remember(store, (1, 1, "UID SORT", n, b"k", b""), b"v")
    assert [k[3] for k in ordering._answers[store]] == [2, 3, 4]
    ordering._remember(store, (1, 1, "UID SORT", 9, b"k" * 98, b""), b"v")
    assert [k[3] for k in ordering._answers[store]] == [9]
    ordering._remember(store, (1, 1, "UID SORT", 10, b"k" * 200, b""), b"v")
    assert [k[3] for k in ordering._answers[store]] == [10]  # the newest always stays
