"""The maildrop snapshot a POP3 session works on (RFC 1939 §5).

Message numbers are fixed when the session enters the TRANSACTION state: messages that arrive
later are not seen, and a message removed by another protocol keeps its number (retrieving it
then fails).  DELE only marks; the marks are applied by the session in the UPDATE state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as the session saw it at login."""

    uid: int
    size: int  # octets, as LIST and STAT report them
    seen: bool  # already \\Seen: RETR need not set it again


class Maildrop:
    """Numbered messages (1-based) with the session's deletion marks."""

    def __init__(self, uidvalidity: int, entries: Iterable[Entry]) -> None:
        self.uidvalidity = uidvalidity
        self.entries: list[Entry] = list(entries)
        self.deleted: set[int] = set()  # message numbers marked by DELE

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, number: int) -> Entry | None:
        """The message with this number, None when out of range or marked deleted
        (RFC 1939 §5: a deleted message may not be referred to)."""
        if 1 <= number <= len(self.entries) and number not in self.deleted:
            return self.entries[number - 1]
        return None

    def live(self) -> list[tuple[int, Entry]]:
        """(number, entry) of every message not marked deleted, in order."""
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted."""
        count = total = 0
        for n, e in enumerate(self.entries, 1):
            if n not in self.deleted:
                count += 1
                total += e.size
        return count, total

    def uidl(self, entry: Entry) -> str:
        """RFC 1939 §7 unique-id: stable across sessions because IMAP UIDs are stable within
        a UIDVALIDITY; "<uidvalidity>.<uid>" is digits and a dot (0x21-0x7E), at most 21
        characters (limit 70)."""
        return f"{self.uidvalidity}.{entry.uid}"

    def deleted_uids(self) -> list[int]:
        return sorted(self.entries[n - 1].uid for n in self.deleted)
