"""Per-mailbox cache of the SELECT flag list, caught up from MODSEQ deltas.

Building the flag list of a 100,000-message mailbox from rows costs around 100 ms of Python
objects, and clients SELECT the same large mailboxes again and again (several connections,
reconnects).  Every change to a mailbox raises its HIGHESTMODSEQ and leaves either a row with
that modseq or an expunge tombstone (RFC 7162), so a cached list is brought up to date exactly
by reading only what changed since — the same catch-up QRESYNC gives clients.  Everything is
read in the caller's snapshot, so changes made by other processes are seen too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from postroom.store.base import MessageFlags, NotFound

# Smaller mailboxes are read from rows every time: it is cheap and keeps the cache small.
MIN_MESSAGES = 1000
# Messages held over all cached mailboxes (about 100 bytes each).
MAX_CACHED = 500_000
# Beyond this share of changed messages a full read is cheaper than a merge.
MAX_DELTA = 0.25

FlagSet = Callable[[int, "str | None"], frozenset[str]]
_uid = attrgetter("uid")


class FlagList(list):
    """The flag list with the HIGHESTMODSEQ it is exact at (read in the same snapshot), so
    IMAP sessions can share it without another query."""

    highestmodseq: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    uidvalidity: int
    modseq: int
    items: list[MessageFlags]  # never mutated once cached


class FlagsCache:
    def __init__(self, flagset: FlagSet) -> None:
        self._flagset = flagset
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def read(self, conn: sqlite3.Connection, mailbox_id: int) -> list[MessageFlags]:
        """Every message of the mailbox in UID order (a new list the caller may keep)."""
        row = conn.execute(
            "SELECT uidvalidity, highestmodseq, messages FROM mailboxes WHERE id = ?",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        uidvalidity, modseq, count = row
        with self._lock:
            entry = self._entries.get(mailbox_id)
            if entry is not None:
                self._entries.move_to_end(mailbox_id)
        items = None
        if entry is not None and entry.uidvalidity == uidvalidity and entry.modseq <= modseq:
            if entry.modseq == modseq:
                return _result(entry.items, modseq)
            items = self._catch_up(conn, mailbox_id, entry, count)
        if items is None:
            items = self._rows(conn, mailbox_id, "", ())
        if count >= MIN_MESSAGES:
            self._put(mailbox_id, _Entry(uidvalidity, modseq, items))
        return _result(items, modseq)

    def _rows(
        self, conn: sqlite3.Connection, mailbox_id: int, where: str, params: tuple[int, ...]
    ) -> list[MessageFlags]:
        flagset = self._flagset
        rows = conn.execute(
            f"SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?{where}"
            " ORDER BY uid",
            (mailbox_id, *params),
        )
        return [MessageFlags(uid, flagset(bits, kw), modseq) for uid, bits, kw, modseq in rows]

    def _catch_up(
        self, conn: sqlite3.Connection, mailbox_id: int, entry: _Entry, count: int
    ) -> list[MessageFlags] | None:
        changed = self._rows(conn, mailbox_id, " AND modseq > ?", (entry.modseq,))
        expunged = [
            r[0]
            for r in conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, entry.modseq),
            )
        ]
        if len(changed) + len(expunged) > MAX_DELTA * max(len(entry.items), 1):
            return None
        last = entry.items[-1].uid if entry.items else 0
        gone = {uid for uid in expunged if uid <= last}
        gone.update(m.uid for m in changed if m.uid <= last)
        items = [m for m in entry.items if m.uid not in gone] if gone else list(entry.items)
        if changed:
            appended_only = not items or changed[0].uid > items[-1].uid
            items.extend(changed)
            if not appended_only:
                items.sort(key=_uid)
        # The counter is kept by triggers in the same snapshot: a mismatch means a bug, and a
        # full read is the safe answer.
        return items if len(items) == count else None

    def _put(self, mailbox_id: int, entry: _Entry) -> None:
        with self._lock:
            old = self._entries.pop(mailbox_id, None)
            if old is not None:
                self._size -= len(old.items)
            if len(entry.items) > MAX_CACHED:
                return
            self._entries[mailbox_id] = entry
            self._size += len(entry.items)
            while self._size > MAX_CACHED:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted.items)


def _result(items: list[MessageFlags], modseq: int) -> FlagList:
    result = FlagList(items)
    result.highestmodseq = modseq
    return result
