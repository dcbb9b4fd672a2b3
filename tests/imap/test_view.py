"""The session's mailbox view: which untagged responses changes turn into, and when."""

from __future__ import annotations

from postroom.imap.view import MailboxView
from postroom.store.base import Changes, MessageFlags


def mf(uid: int, *flags: str, modseq: int = 1) -> MessageFlags:
    return MessageFlags(uid, frozenset(flags), modseq)


def view(*uids: int) -> MailboxView:
    return MailboxView(1, 99, max(uids) + 1, 10, [mf(u) for u in uids], readonly=False)


def test_new_messages_and_flag_changes():
    v = view(1, 2, 3)
    out = v.apply(Changes(12, 6, (mf(2, "\\Seen", modseq=11), mf(5, modseq=12)), ()), True)
    assert out == [b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n", b"* 4 EXISTS\r\n"]
    assert list(v.uids) == [1, 2, 3, 5] and v.modseq == 12 and v.uidnext == 6
    # the same change seen again (this session's own STORE) is not repeated
    assert v.apply(Changes(12, 6, (mf(2, "\\Seen", modseq=11),), ()), True) == []


def test_expunge_order_and_holding_back():
    v = view(1, 2, 3, 4)
    out = v.apply(Changes(11, 5, (), (2, 4)), allow_expunge=False)
    assert out == [] and len(v) == 4 and v.pending_expunge == {2, 4}
    # flag changes for a message pending expunge are not announced
    assert v.apply(Changes(12, 5, (mf(4, "\\Seen", modseq=12),), ()), False) == []
    out = v.apply(Changes(12, 5, (), ()), allow_expunge=True)
    assert out == [b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]  # descending: numbers stay valid
    assert list(v.uids) == [1, 3] and not v.pending_expunge


def test_vanished_with_qresync_and_unknown_uids_ignored():
    v = view(1, 2, 3)
    v.qresync = True
    assert v.apply(Changes(11, 4, (), (1, 3, 77)), True) == [b"* VANISHED 1,3\r\n"]


def test_condstore_modseq_and_new_keyword_flags():
    v = view(1, 2)
    v.condstore = True
    out = v.apply(Changes(15, 3, (mf(1, "$Todo", modseq=15),), ()), True)
    assert out[0].startswith(b"* FLAGS (") and b"$Todo" in out[0]
    assert out[1].startswith(b"* OK [PERMANENTFLAGS (")
    assert out[2] == b"* 1 FETCH (UID 1 FLAGS ($Todo) MODSEQ (15))\r\n"


def test_recent_shown_to_rev1_only():
    v = view(1)
    v.recent.add(1)
    assert v.flags_of(0) == b"(\\Recent)"
    v.rev2 = True
    assert v.flags_of(0) == b"()"
