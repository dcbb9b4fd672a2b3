"""One session's view of its selected mailbox (sans-IO), over snapshots shared by sessions.

IMAP sequence numbers belong to a session: they change only when *this* session is told of
an expunge, at a moment the RFC allows (RFC 9051 §7.5.1: never during FETCH, STORE or
SEARCH).  The view turns store ``Changes`` into the untagged EXISTS / FETCH / EXPUNGE /
VANISHED responses, holding expunges back while they may not be announced.

The UID map (uids, flags, modseqs) costs ~20 bytes a message; 1,000 IDLE sessions on a
100,000-message INBOX must not each hold a copy.  Every change raises the mailbox's
HIGHESTMODSEQ and leaves a row or a tombstone with that modseq (RFC 7162 §3.1), so "the
mailbox at modseq M" is one well-defined state.  A view whose content is exactly that state
("exact") points at an immutable ``Snapshot`` published in the mailbox's ``Share``; the
sessions woken by one delivery all move to the same new snapshot (the first builds it, the
others adopt it without copying).  A view diverges — copies the arrays, copy-on-write — only
while it differs from every published state: its own STORE or EXPUNGE not yet resynchronised,
or expunges held back during FETCH/STORE/SEARCH.  Its next full resynchronisation makes it
exact again and it rejoins the shared snapshot.
"""

from __future__ import annotations

import weakref
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from itertools import compress
from operator import attrgetter

from postroom.imap import response
from postroom.store.base import SYSTEM_FLAGS, Changes, MessageFlags

BASE_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
MAX_RENDERED = 4096  # distinct flag lists rendered and kept per mailbox
KEEP_SHARES = 32  # shares of mailboxes no session has selected kept for the next SELECT
KEEP_MESSAGES = 1_000_000  # ... holding at most this many messages (~20 bytes each)
UNKNOWN = 1 << 64  # beyond any modseq (RFC 7162 §7: 63 bits)


_uid, _flags, _modseq = attrgetter("uid"), attrgetter("flags"), attrgetter("modseq")


def _keywords(flags: Iterable[str]) -> set[str]:
    return {f for f in flags if f not in SYSTEM_FLAGS}


class Snapshot:
    """The UID map at one moment; never mutated once published in a ``Share``."""

    __slots__ = ("modseq", "uids", "flags", "modseqs", "_keywords", "__weakref__")

    def __init__(
        self, modseq: int, uids: array, flags: list[frozenset[str]], modseqs: array
    ) -> None:
        self.modseq = modseq
        self.uids = uids
        self.flags = flags
        self.modseqs = modseqs
        self._keywords: frozenset[str] | None = None

    def copy(self) -> Snapshot:
        return Snapshot(
            self.modseq, array("I", self.uids), list(self.flags), array("Q", self.modseqs)
        )

    def index(self, uid: int) -> int | None:
        uids = self.uids
        i = bisect_left(uids, uid)
        return i if i < len(uids) and uids[i] == uid else None

    def keywords(self) -> frozenset[str]:
        """Keywords present in the mailbox (computed once per published snapshot)."""
        if self._keywords is None:
            found: set[str] = set()
            for flags in set(self.flags):
                found.update(_keywords(flags))
            self._keywords = frozenset(found)
        return self._keywords


class Share:
    """What the sessions of one process with the same mailbox selected have in common: the
    latest exact snapshot, interned flag sets and their rendered wire form."""

    __slots__ = ("latest", "interned", "rendered", "__weakref__")

    def __init__(self) -> None:
        self.latest: Snapshot | None = None
        self.interned: dict[frozenset[str], frozenset[str]] = {}
        self.rendered: dict[frozenset[str], bytes] = {}

    def intern(self, flags: frozenset[str]) -> frozenset[str]:
        return self.interned.setdefault(flags, flags)

    def render(self, flags: frozenset[str]) -> bytes:
        rendered = self.rendered.get(flags)
        if rendered is None:
            rendered = response.flag_list(flags)
            if len(self.rendered) < MAX_RENDERED:
                self.rendered[flags] = rendered
        return rendered

    def snapshot_at(self, modseq: int) -> Snapshot | None:
        latest = self.latest
        return latest if latest is not None and latest.modseq == modseq else None


class Shares:
    """Shares by (mailbox id, UIDVALIDITY).  One lives while a view uses it, and the most
    recently selected ones a little longer, so the next SELECT (a client reconnecting, a
    second connection) starts from a snapshot instead of the store's flag list."""

    def __init__(self, keep: int = KEEP_SHARES, keep_messages: int = KEEP_MESSAGES) -> None:
        self._shares: weakref.WeakValueDictionary[tuple[int, int], Share] = (
            weakref.WeakValueDictionary()
        )
        self._recent: OrderedDict[tuple[int, int], Share] = OrderedDict()
        self._keep = keep
        self._keep_messages = keep_messages

    def get(self, mailbox_id: int, uidvalidity: int) -> Share:
        key = (mailbox_id, uidvalidity)
        share = self._shares.get(key)
        if share is None:
            share = self._shares[key] = Share()
        self._recent[key] = share
        self._recent.move_to_end(key)
        kept = 0
        for k in reversed(list(self._recent)):  # newest first; forget beyond the bounds
            latest = self._recent[k].latest
            kept += len(latest.uids) if latest is not None else 0
            if k != key and (kept > self._keep_messages or len(self._recent) > self._keep):
                del self._recent[k]
        return share


class MailboxView:
    """``messages`` is the mailbox's content, exact at ``highestmodseq`` when ``exact``;
    ``snapshot`` (instead of messages) adopts one already published in ``share``."""

    def __init__(
        self,
        mailbox_id: int,
        uidvalidity: int,
        uidnext: int,
        highestmodseq: int,
        messages: Sequence[MessageFlags] = (),
        readonly: bool = False,
        share: Share | None = None,
        snapshot: Snapshot | None = None,
        exact: bool = True,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.modseq = highestmodseq  # changes up to here are reflected in the view
        self.readonly = readonly
        self.share = share if share is not None else Share()
        self.pending_expunge: set[int] = set()
        self.recent: set[int] = set()
        self.saved: list[int] = []  # SEARCHRES "$" (RFC 5182), as UIDs
        self.condstore = False
        self.qresync = False
        self.rev2 = False
        self._diverged = not exact  # differs from the mailbox at self.modseq
        # A resynchronisation answer must reach this modseq to cover this session's own
        # changes (UNKNOWN: only a query started after them, ``fresh``, does).
        self._dirty_mark = 0 if exact else UNKNOWN
        if snapshot is not None:
            self.snap = snapshot
            self._private = False
            self.keywords: frozenset[str] = snapshot.keywords()
            return
        flags = list(map(_flags, messages))
        canon = {f: self.share.intern(f) for f in set(flags)}
        self.snap = Snapshot(
            highestmodseq,
            array("I", map(_uid, messages)),
            list(map(canon.__getitem__, flags)),
            array("Q", map(_modseq, messages)),
        )
        self._private = True  # the arrays are this view's until published
        self.keywords = self.snap.keywords()
        self._publish()

    # -- lookups -------------------------------------------------------------------------
    @property
    def uids(self) -> array:
        return self.snap.uids

    @property
    def flags(self) -> list[frozenset[str]]:
        return self.snap.flags

    @property
    def modseqs(self) -> array:
        return self.snap.modseqs

    @property
    def shared(self) -> bool:
        """Whether the UID map is a published snapshot (no copy held by this view)."""
        return not self._private

    def __len__(self) -> int:
        return len(self.snap.uids)

    def index(self, uid: int) -> int | None:
        return self.snap.index(uid)

    def flags_of(self, i: int) -> bytes:
        flags = self.snap.flags[i]
        if self.recent and not self.rev2 and self.snap.uids[i] in self.recent:
            return response.flag_list((*flags, "\\Recent"))
        return self.share.render(flags)

    def matching(self, predicate: Callable[[frozenset[str]], bool]) -> list[int]:
        """Positions whose flags satisfy ``predicate``, evaluated once per distinct flag set
        (flag sets are interned, so a 100,000-message mailbox has a few dozen)."""
        verdict = {flags: predicate(flags) for flags in self.share.interned}
        flags = self.snap.flags
        found = list(compress(range(len(flags)), map(verdict.__getitem__, flags)))
        pending = self.pending_expunge
        if pending:
            uids = self.snap.uids
            found = [i for i in found if uids[i] not in pending]
        return found

    def flags_response(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS (RFC 9051 §7.3.5, §7.1): keywords may be created (\\*)."""
        flags = (*BASE_FLAGS, *sorted(self.keywords))
        permanent = () if self.readonly else (*flags, "\\*")
        return [
            response.untagged(b"FLAGS " + response.flag_list(flags)),
            response.ok("Flags permitted", b"PERMANENTFLAGS " + response.flag_list(permanent)),
        ]

    def fetch_flags_line(self, i: int) -> bytes:
        """``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`` for an unsolicited flag update."""
        line = b"* %d FETCH (UID %d FLAGS %s" % (i + 1, self.snap.uids[i], self.flags_of(i))
        if self.condstore:
            line += b" MODSEQ (%d)" % self.snap.modseqs[i]
        return line + b")\r\n"

    # -- sharing -------------------------------------------------------------------------
    def _own(self) -> Snapshot:
        """The arrays, copied first when they are a published snapshot (copy-on-write)."""
        if not self._private:
            self.snap = self.snap.copy()
            self._private = True
        return self.snap

    def _publish(self) -> None:
        """Rejoin the shared state when this view is exactly the mailbox at ``modseq``:
        adopt the published snapshot of that modseq, or publish this one when it is newer."""
        if not self._private or self._diverged or self.pending_expunge:
            return
        share = self.share
        same = share.snapshot_at(self.modseq)
        if same is not None:
            self.snap = same
            self._private = False
        elif share.latest is None or share.latest.modseq < self.modseq:
            self.snap.modseq = self.modseq
            self.snap._keywords = None
            share.latest = self.snap
            self._private = False

    # -- updates -------------------------------------------------------------------------
    def set_flags(self, i: int, flags: frozenset[str], modseq: int) -> bool:
        """Record this session's own flag change; True when a keyword appeared that FLAGS
        did not list yet."""
        self._diverged = True
        self._dirty_mark = max(self._dirty_mark, modseq)
        return self._set_flags(i, flags, modseq)

    def _set_flags(self, i: int, flags: frozenset[str], modseq: int) -> bool:
        snap = self._own()
        snap.flags[i] = self.share.intern(flags)
        snap.modseqs[i] = modseq
        new = _keywords(flags) - self.keywords
        if new:
            self.keywords = self.keywords | new
            return True
        return False

    def apply(self, changes: Changes, allow_expunge: bool, fresh: bool = False) -> list[bytes]:
        """Fold changes (everything after ``self.modseq``) into the view; returns the
        untagged responses to send.  ``fresh``: the query started after this session's own
        changes."""
        pending = self.pending_expunge
        snap = self.snap
        target = None
        if allow_expunge and not pending and not self._diverged:
            target = self.share.snapshot_at(changes.highestmodseq)
        if target is not None and target is not snap:
            out = self._adopt(changes, target)
        else:
            out = self._fold(changes, allow_expunge)
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)
        if fresh or changes.highestmodseq >= self._dirty_mark:
            self._diverged = False  # every change up to modseq is folded in, own ones too
            self._dirty_mark = 0
        self._publish()
        return out

    def _adopt(self, changes: Changes, target: Snapshot) -> list[bytes]:
        """The responses ``_fold`` would give, read from the published result instead of
        building it again."""
        old = self.snap
        gone = sorted(i for u in changes.expunged if (i := old.index(u)) is not None)
        out: list[bytes] = []
        if gone:
            uids = [old.uids[i] for i in gone]
            self.recent.difference_update(uids)
            if self.qresync:
                out.append(b"* VANISHED " + response.number_set(uids) + b"\r\n")
            else:
                out.extend(b"* %d EXPUNGE\r\n" % (i + 1) for i in reversed(gone))
        last = old.uids[-1] if old.uids else 0
        new_keywords = False
        grew = False
        self.snap = target
        self._private = False
        for mf in changes.changed:
            if mf.uid > last:
                grew = True
                new_keywords |= bool(_keywords(mf.flags) - self.keywords)
                self.keywords = self.keywords | _keywords(mf.flags)
                continue
            i = old.index(mf.uid)
            j = target.index(mf.uid)
            if i is None or j is None:
                continue
            if old.flags[i] == mf.flags and old.modseqs[i] >= mf.modseq:
                continue
            new = _keywords(mf.flags) - self.keywords
            if new:
                self.keywords = self.keywords | new
                new_keywords = True
            out.append(self.fetch_flags_line(j))
        if grew:
            out.append(b"* %d EXISTS\r\n" % len(target.uids))
        if new_keywords:
            out[0:0] = self.flags_response()
        return out

    def _fold(self, changes: Changes, allow_expunge: bool) -> list[bytes]:
        out: list[bytes] = []
        pending = self.pending_expunge
        for uid in changes.expunged:
            if self.index(uid) is not None:
                pending.add(uid)
        if allow_expunge and pending:
            out.extend(self._expunge(sorted(pending)))
        last = self.uids[-1] if self.uids else 0
        new: list[MessageFlags] = []
        new_keywords = False
        for mf in changes.changed:
            if mf.uid > last:
                new.append(mf)
                continue
            i = self.index(mf.uid)
            if i is None or mf.uid in pending:
                continue
            if self.flags[i] == mf.flags and self.modseqs[i] >= mf.modseq:
                continue  # already known: this session's own STORE
            new_keywords |= self._set_flags(i, mf.flags, mf.modseq)
            out.append(self.fetch_flags_line(i))
        if new:
            new.sort(key=lambda m: m.uid)
            snap = self._own()
            intern = self.share.intern
            for mf in new:
                snap.uids.append(mf.uid)
                snap.flags.append(intern(mf.flags))
                snap.modseqs.append(mf.modseq)
                kw = _keywords(mf.flags)
                if kw - self.keywords:
                    new_keywords = True
                    self.keywords = self.keywords | kw
            out.append(b"* %d EXISTS\r\n" % len(snap.uids))
        if new_keywords:
            out[0:0] = self.flags_response()
        return out

    def expunge(self, uids: Iterable[int]) -> list[bytes]:
        """Remove messages now; EXPUNGE in descending order keeps every number valid as it is
        sent (RFC 9051 §7.5.1), or one VANISHED with QRESYNC (RFC 7162 §3.2.10).  Removing
        messages not announced as expunged (this session's own EXPUNGE or MOVE) diverges
        from the mailbox at ``modseq`` until the next resynchronisation."""
        out = self._expunge(uids)
        self._publish()
        return out

    def _expunge(self, uids: Iterable[int]) -> list[bytes]:
        positions = sorted(i for u in uids if (i := self.index(u)) is not None)
        if not positions:
            return []
        gone = [self.uids[i] for i in positions]
        pending = self.pending_expunge
        if any(u not in pending for u in gone):
            self._diverged = True
            self._dirty_mark = UNKNOWN
        pending.difference_update(gone)
        self.recent.difference_update(gone)
        if self.qresync:
            out = [b"* VANISHED " + response.number_set(gone) + b"\r\n"]
        else:
            out = [b"* %d EXPUNGE\r\n" % (i + 1) for i in reversed(positions)]
        old = self.snap
        drop = set(positions)
        keep = [i for i in range(len(old.uids)) if i not in drop]
        self.snap = Snapshot(
            old.modseq,
            array("I", (old.uids[i] for i in keep)),
            [old.flags[i] for i in keep],
            array("Q", (old.modseqs[i] for i in keep)),
        )
        self._private = True
        return out
