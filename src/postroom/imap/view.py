"""One session's view of its selected mailbox (sans-IO).

IMAP sequence numbers belong to a session: they change only when *this* session is told of
an expunge, at a moment the RFC allows (RFC 9051 §7.5.1: never during FETCH, STORE or
SEARCH).  The view keeps the UID map compactly (array of uids, interned flag sets, modseqs)
and turns store ``Changes`` into the untagged EXISTS / FETCH / EXPUNGE / VANISHED responses,
holding expunges back while they may not be announced.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from postroom.imap import response
from postroom.store.base import SYSTEM_FLAGS, Changes, MessageFlags

BASE_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class MailboxView:
    def __init__(
        self,
        mailbox_id: int,
        uidvalidity: int,
        uidnext: int,
        highestmodseq: int,
        messages: Sequence[MessageFlags],
        readonly: bool,
    ) -> None:
        self.mailbox_id = mailbox_id
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.modseq = highestmodseq  # changes up to here are reflected in the view
        self.readonly = readonly
        self._interned: dict[frozenset[str], frozenset[str]] = {}
        self._rendered: dict[frozenset[str], bytes] = {}
        self.uids = array("I", (m.uid for m in messages))
        self.flags: list[frozenset[str]] = [self._intern(m.flags) for m in messages]
        self.modseqs = array("Q", (m.modseq for m in messages))
        self.pending_expunge: set[int] = set()
        self.recent: set[int] = set()
        self.saved: list[int] = []  # SEARCHRES "$" (RFC 5182), as UIDs
        self.keywords: set[str] = set()
        for flags in self._interned:
            self.keywords.update(f for f in flags if f not in SYSTEM_FLAGS)
        self.condstore = False
        self.qresync = False
        self.rev2 = False

    # -- lookups -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.uids)

    def index(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def _intern(self, flags: frozenset[str]) -> frozenset[str]:
        return self._interned.setdefault(flags, flags)

    def flags_of(self, i: int) -> bytes:
        flags = self.flags[i]
        if self.recent and not self.rev2 and self.uids[i] in self.recent:
            return response.flag_list((*flags, "\\Recent"))
        rendered = self._rendered.get(flags)
        if rendered is None:
            rendered = self._rendered[flags] = response.flag_list(flags)
        return rendered

    def matching(self, predicate: Callable[[frozenset[str]], bool]) -> list[int]:
        """Positions whose flags satisfy ``predicate``, evaluated once per distinct flag set
        (flag sets are interned, so a 100,000-message mailbox has a few dozen)."""
        verdict = {flags: predicate(flags) for flags in self._interned}
        pending = self.pending_expunge
        uids = self.uids
        return [
            i
            for i, flags in enumerate(self.flags)
            if verdict[flags] and not (pending and uids[i] in pending)
        ]

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
        line = b"* %d FETCH (UID %d FLAGS %s" % (i + 1, self.uids[i], self.flags_of(i))
        if self.condstore:
            line += b" MODSEQ (%d)" % self.modseqs[i]
        return line + b")\r\n"

    # -- updates -------------------------------------------------------------------------
    def set_flags(self, i: int, flags: frozenset[str], modseq: int) -> bool:
        """Record new flags; True when a keyword appeared that FLAGS did not list yet."""
        self.flags[i] = self._intern(flags)
        self.modseqs[i] = modseq
        new = {f for f in flags if f not in SYSTEM_FLAGS} - self.keywords
        if new:
            self.keywords |= new
            return True
        return False

    def apply(self, changes: Changes, allow_expunge: bool) -> list[bytes]:
        """Fold changes into the view; returns the untagged responses to send."""
        out: list[bytes] = []
        pending = self.pending_expunge
        for uid in changes.expunged:
            if self.index(uid) is not None:
                pending.add(uid)
        if allow_expunge and pending:
            out.extend(self.expunge(sorted(pending)))
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
            new_keywords |= self.set_flags(i, mf.flags, mf.modseq)
            out.append(self.fetch_flags_line(i))
        if new:
            new.sort(key=lambda m: m.uid)
            for mf in new:
                self.uids.append(mf.uid)
                self.flags.append(self._intern(mf.flags))
                self.modseqs.append(mf.modseq)
                new_keywords |= bool({f for f in mf.flags if f not in SYSTEM_FLAGS} - self.keywords)
                self.keywords.update(f for f in mf.flags if f not in SYSTEM_FLAGS)
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        if new_keywords:
            out[0:0] = self.flags_response()
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)
        return out

    def expunge(self, uids: Iterable[int]) -> list[bytes]:
        """Remove messages now; EXPUNGE in descending order keeps every number valid as it is
        sent (RFC 9051 §7.5.1), or one VANISHED with QRESYNC (RFC 7162 §3.2.10)."""
        positions = sorted(i for u in uids if (i := self.index(u)) is not None)
        if not positions:
            return []
        gone = [self.uids[i] for i in positions]
        self.pending_expunge.difference_update(gone)
        self.recent.difference_update(gone)
        if self.qresync:
            out = [b"* VANISHED " + response.number_set(gone) + b"\r\n"]
        else:
            out = [b"* %d EXPUNGE\r\n" % (i + 1) for i in reversed(positions)]
        drop = set(positions)
        keep = [i for i in range(len(self.uids)) if i not in drop]
        self.uids = array("I", (self.uids[i] for i in keep))
        self.flags = [self.flags[i] for i in keep]
        self.modseqs = array("Q", (self.modseqs[i] for i in keep))
        return out
