"""Views sharing snapshots (imap/view.py) behave exactly like views that share nothing.

A model mailbox records its state at every modseq.  Several views on one ``Share`` and, beside
each, a reference view with a share of its own (so it never adopts another's snapshot) go
through the same random history: other sessions' appends, flag changes and expunges; this
session's own STORE and EXPUNGE; resynchronisations with fresh or stale (shared, started
earlier) answers, with expunges allowed or held back.  Every response and the resulting UID
map must be identical, and every published snapshot must be the mailbox at its modseq.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.imap.view import MailboxView, Share
from postroom.store.base import Changes, MessageFlags

FLAGS = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "$Work"}), frozenset({"$X"})]


class Model:
    def __init__(self, n: int) -> None:
        self.modseq = 1
        self.uidnext = n + 1
        self.rows = {u: (FLAGS[0], 1) for u in range(1, n + 1)}
        self.tombs: dict[int, int] = {}
        self.history = {1: dict(self.rows)}

    def _bump(self) -> int:
        self.modseq += 1
        return self.modseq

    def _saved(self) -> None:
        self.history[self.modseq] = dict(self.rows)

    def append(self, flags: frozenset[str]) -> None:
        self.rows[self.uidnext] = (flags, self._bump())
        self.uidnext += 1
        self._saved()

    def set_flags(self, uid: int, flags: frozenset[str]) -> int | None:
        if uid not in self.rows or self.rows[uid][0] == flags:
            return None
        m = self._bump()
        self.rows[uid] = (flags, m)
        self._saved()
        return m

    def expunge(self, uids: list[int]) -> list[int]:
        gone = sorted(u for u in set(uids) if u in self.rows)
        if gone:
            m = self._bump()
            for u in gone:
                del self.rows[u]
                self.tombs[u] = m
            self._saved()
        return gone

    def changes_since(self, since: int, at: int) -> Changes:
        rows = self.history[max(m for m in self.history if m <= at)]
        changed = tuple(MessageFlags(u, f, m) for u, (f, m) in sorted(rows.items()) if m > since)
        expunged = tuple(sorted(u for u, m in self.tombs.items() if since < m <= at))
        return Changes(at, self.uidnext, changed, expunged)

    def messages(self) -> list[MessageFlags]:
        return [MessageFlags(u, f, m) for u, (f, m) in sorted(self.rows.items())]


def _state(v: MailboxView) -> tuple:
    return (list(v.uids), list(v.flags), list(v.modseqs), v.keywords, v.modseq, v.pending_expunge)


op = st.tuples(
    st.sampled_from(["append", "other_flags", "other_expunge", "own_flags", "own_expunge",
                     "sync", "sync"]),
    st.integers(0, 2),  # which session
    st.integers(0, 40),  # a UID or a position
    st.integers(0, len(FLAGS) - 1),
    st.booleans(),  # allow expunge
    st.booleans(),  # fresh answer
    st.integers(0, 5),  # how stale a shared answer is
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12), st.lists(op, max_size=40), st.booleans())
def test_shared_views_answer_like_private_views(n, ops, qresync):
    model = Model(n)
    share = Share()
    views, refs = [], []
    for _ in range(3):
        v = MailboxView(1, 7, model.uidnext, model.modseq, model.messages(), share=share)
        r = MailboxView(1, 7, model.uidnext, model.modseq, model.messages())
        for x in (v, r):
            x.qresync = x.condstore = qresync
        views.append(v)
        refs.append(r)
    for kind, who, num, f, allow, fresh, stale in ops:
        v, r = views[who], refs[who]
        if kind == "append":
            model.append(FLAGS[f])
        elif kind == "other_flags":
            model.set_flags(num, FLAGS[f])
        elif kind == "other_expunge":
            model.expunge([num, num + 1])
        elif kind == "own_flags" and len(v):
            i = num % len(v)
            m = model.set_flags(v.uids[i], FLAGS[f])
            if m is not None:
                assert v.set_flags(i, FLAGS[f], m) == r.set_flags(i, FLAGS[f], m)
        elif kind == "own_expunge" and len(v):
            gone = model.expunge([v.uids[num % len(v)]])
            assert v.expunge(gone) == r.expunge(gone)
        elif kind == "sync":
            at = model.modseq if fresh else max(v.modseq, model.modseq - stale)
            changes = model.changes_since(v.modseq, at)
            fresh = fresh or at == model.modseq
            assert v.apply(changes, allow, fresh) == r.apply(changes, allow, fresh)
        assert _state(v) == _state(r)
        latest = share.latest
        if latest is not None:
            rows = model.history[latest.modseq]
            assert list(latest.uids) == sorted(rows)
            assert [(f, m) for f, m in zip(latest.flags, latest.modseqs, strict=True)] == [
                rows[u] for u in latest.uids
            ]


def test_views_at_one_modseq_hold_one_snapshot():
    model = Model(50)
    share = Share()
    views = [
        MailboxView(1, 7, model.uidnext, model.modseq, model.messages(), share=share)
        for _ in range(3)
    ]
    assert views[0].uids is views[1].uids is views[2].uids
    model.append(FLAGS[1])
    model.set_flags(3, FLAGS[2])
    changes = model.changes_since(1, model.modseq)
    outs = [v.apply(changes, True, fresh=False) for v in views]
    assert outs[0] == outs[1] == outs[2]
    assert views[0].uids is views[1].uids is views[2].uids and len(views[0]) == 51
    # an own STORE copies; the next full resynchronisation shares again
    m = model.set_flags(5, FLAGS[1])
    views[1].set_flags(4, FLAGS[1], m)
    assert views[1].uids is not views[0].uids and views[1].flags[4] == FLAGS[1]
    changes = model.changes_since(views[0].modseq, model.modseq)
    assert views[0].apply(changes, True) == [b"* 5 FETCH (UID 5 FLAGS (\\Seen))\r\n"]
    assert views[1].apply(changes, True) == []
    assert views[1].uids is views[0].uids and views[1].shared
