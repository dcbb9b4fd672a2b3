from __future__ import annotations

from array import array

import pytest

from postroom.imap import seqset
from postroom.imap.seqset import STAR, OutOfRange, SeqSet, SeqSetError


def test_parse():
    assert seqset.parse(b"1:4,7,9:*") == SeqSet(((1, 4), (7, 7), (9, STAR)))
    assert seqset.parse(b"$") == SeqSet(saved=True)
    for bad in (b"", b"0", b"1:", b",1", b"01", b"4294967296", b"a", b"1::2"):
        with pytest.raises(SeqSetError):
            seqset.parse(bad)


def test_seq_positions():
    s = seqset.parse(b"3:1,2,5:*")
    assert seqset.seq_positions(s, 6) == [(0, 3), (4, 6)]
    assert seqset.seq_positions(seqset.parse(b"*"), 6) == [(5, 6)]
    assert seqset.seq_positions(seqset.parse(b"*:4"), 6) == [(3, 6)]
    with pytest.raises(OutOfRange):
        seqset.seq_positions(seqset.parse(b"7"), 6)
    with pytest.raises(OutOfRange):
        seqset.seq_positions(seqset.parse(b"1:*"), 0)  # RFC 9051 §9: "*" of an empty mailbox


def test_uid_positions():
    uids = array("I", [2, 4, 6, 8, 10])
    assert seqset.uid_positions(seqset.parse(b"1:*"), uids) == [(0, 5)]
    assert seqset.uid_positions(seqset.parse(b"3:7"), uids) == [(1, 3)]
    assert seqset.uid_positions(seqset.parse(b"5"), uids) == []
    # n:* with n above the largest UID still includes the last message (RFC 9051 §6.4.8)
    assert seqset.uid_positions(seqset.parse(b"100:*"), uids) == [(4, 5)]
    assert seqset.uid_positions(seqset.parse(b"1:*"), array("I")) == []


def test_uid_ranges_merge():
    assert seqset.uid_ranges(seqset.parse(b"5:3,6,10:*"), 12) == [(3, 6), (10, 12)]
