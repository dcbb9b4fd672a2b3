"""Sequence sets (RFC 9051 §9 sequence-set): ``1:4,7,9:*`` and ``$`` (RFC 5182).

A parsed set keeps ``*`` symbolic (STAR); it is resolved against the session's view of the
mailbox — message count for sequence numbers, UID list for UIDs — into sorted, merged,
0-based half-open position ranges, so ``1:*`` over 100,000 messages stays one range.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

STAR = 0  # "*": the largest number in use (nz-number never is 0)
MAX_NUMBER = 0xFFFFFFFF


class SeqSetError(ValueError):
    """Malformed sequence set."""


class OutOfRange(ValueError):
    """A message sequence number beyond the mailbox (RFC 9051 §9: answered with BAD)."""


@dataclass(frozen=True, slots=True)
class SeqSet:
    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False  # "$": the result saved by SEARCH RETURN (SAVE) (RFC 5182)


_DIGITS = frozenset(b"0123456789")


def _number(part: bytes) -> int:
    if part == b"*":
        return STAR
    if not part or len(part) > 10 or any(b not in _DIGITS for b in part) or part[0] == 0x30:
        raise SeqSetError("invalid sequence number")
    value = int(part)
    if value > MAX_NUMBER:
        raise SeqSetError("sequence number out of range")
    return value


def parse(text: bytes) -> SeqSet:
    if text == b"$":
        return SeqSet(saved=True)
    if not text:
        raise SeqSetError("empty sequence set")
    ranges = []
    for item in text.split(b","):
        lo, sep, hi = item.partition(b":")
        a = _number(lo)
        b = _number(hi) if sep else a
        ranges.append((a, b))
    return SeqSet(tuple(ranges))


def from_numbers(numbers: Sequence[int]) -> SeqSet:
    return SeqSet(tuple((n, n) for n in numbers))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def seq_positions(seqset: SeqSet, count: int) -> list[tuple[int, int]]:
    """Position ranges ``[lo, hi)`` for message sequence numbers; OutOfRange for a number
    beyond ``count``, including ``*`` in an empty mailbox (RFC 9051 §9 seq-number)."""
    out = []
    for a, b in seqset.ranges:
        a = count if a == STAR else a
        b = count if b == STAR else b
        if a > b:
            a, b = b, a
        if a < 1 or b > count:
            raise OutOfRange("invalid message sequence number")
        out.append((a - 1, b))
    return _merge(out)


def uid_positions(seqset: SeqSet, uids: Sequence[int]) -> list[tuple[int, int]]:
    """Position ranges ``[lo, hi)`` in the ascending ``uids`` covered by a UID set.  ``*`` is
    the largest UID, so ``n:*`` always includes the last message (RFC 9051 §6.4.8)."""
    if not uids:
        return []
    top = uids[-1]
    out = []
    for a, b in seqset.ranges:
        a = top if a == STAR else a
        b = top if b == STAR else b
        if a > b:
            a, b = b, a
        lo = bisect_left(uids, a)
        hi = bisect_right(uids, b)
        if lo < hi:
            out.append((lo, hi))
    return _merge(out)


def uid_ranges(seqset: SeqSet, top: int) -> list[tuple[int, int]]:
    """Inclusive UID ranges with ``*`` resolved to ``top`` (the largest UID in use)."""
    out = []
    for a, b in seqset.ranges:
        a = top if a == STAR else a
        b = top if b == STAR else b
        out.append((min(a, b), max(a, b)))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(out):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def positions(ranges: Sequence[tuple[int, int]]) -> Iterator[int]:
    for lo, hi in ranges:
        yield from range(lo, hi)


def count(ranges: Sequence[tuple[int, int]]) -> int:
    return sum(hi - lo for lo, hi in ranges)
