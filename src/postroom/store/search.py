"""Compile a search query tree (query.py) to one SQL statement over messages and blobs.

Every leaf is NULL-safe (it yields 0 or 1, never NULL), so ``Not`` is a plain SQL NOT.
Header values in ``blobs`` are stored case-folded, so a Python-folded needle and ``instr``
give IMAP's case-insensitive substring match (RFC 9051 §6.4.4) in C; the full-text nodes
select candidates with the FTS5 trigram index when the needle has three characters or more
and confirm each with a substring check of the stored text.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

from postroom.store import query as q
from postroom.store.schema import FLAG_BITS, SEEN
from postroom.store.textindex import BODY_TEXT, WORD

# Header fields kept as columns of blobs (case-folded); others are read from the message.
HEADER_COLUMNS = {
    "subject": "subject",
    "from": "from_addr",
    "to": "to_addr",
    "cc": "cc_addr",
    "bcc": "bcc_addr",
    "message-id": "message_id",
}
_FLAG_BITS_FOLDED = {name.lower(): bit for name, bit in FLAG_BITS.items()}
# Beyond this many UID ranges the ranges are passed as one JSON parameter.
_INLINE_RANGES = 16
# FTS5's trigram tokenizer indexes sequences of this many characters; a needle without a
# word this long is checked against every text.
TRIGRAM = 3
# Trigrams of a long needle used to select candidates (more narrow them little).
MAX_TRIGRAMS = 16


@dataclass
class Compiled:
    sql: str
    params: list[object] = field(default_factory=list)
    described: bool = False  # reads what a message's description holds (describe.py)


class _Compiler:
    def __init__(self, mailbox_id: int) -> None:
        self.mailbox_id = mailbox_id
        self.params: list[object] = []
        self.needs_blob = False
        self.described = False

    def node(self, node: q.Query) -> str:
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise TypeError(f"not a search query node: {node!r}")
        return method(node)

    def _param(self, value: object) -> str:
        self.params.append(value)
        return "?"

    def _all(self, node: q.All) -> str:
        return "1"

    def _and(self, node: q.And) -> str:
        if not node.parts:
            return "1"
        return "(" + " AND ".join(self.node(p) for p in node.parts) + ")"

    def _or(self, node: q.Or) -> str:
        if not node.parts:
            return "0"
        return "(" + " OR ".join(self.node(p) for p in node.parts) + ")"

    def _not(self, node: q.Not) -> str:
        inner = node.part
        if isinstance(inner, q.HasFlag):
            bit = _FLAG_BITS_FOLDED.get(inner.flag.lower())
            if bit == SEEN:
                # UNSEEN from the partial index messages_unseen: work in proportion to the
                # unseen messages, not to the mailbox (the planner has no statistics to
                # choose it by itself).
                return (
                    "m.uid IN (SELECT uid FROM messages INDEXED BY messages_unseen"
                    f" WHERE mailbox_id = {self._param(self.mailbox_id)} AND flags & 1 = 0)"
                )
            if bit is not None:
                return f"m.flags & {bit} = 0"
        return f"NOT ({self.node(inner)})"

    def _uidin(self, node: q.UidIn) -> str:
        if not node.ranges:
            return "0"
        if len(node.ranges) <= _INLINE_RANGES:
            terms = [
                f"m.uid BETWEEN {self._param(lo)} AND {self._param(hi)}" for lo, hi in node.ranges
            ]
            return "(" + " OR ".join(terms) + ")"
        ranges = self._param(json.dumps([list(r) for r in node.ranges]))
        return (
            f"EXISTS (SELECT 1 FROM json_each({ranges}) r WHERE m.uid BETWEEN "
            "json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]'))"
        )

    def _hasflag(self, node: q.HasFlag) -> str:
        if node.flag.startswith("\\"):
            bit = _FLAG_BITS_FOLDED.get(node.flag.lower())
            return "0" if bit is None else f"m.flags & {bit} != 0"
        # Keywords compare case-insensitively; they are atoms (ASCII), so lower() suffices.
        needle = self._param(f" {node.flag.lower()} ")
        return f"instr(' ' || lower(ifnull(m.keywords, '')) || ' ', {needle}) > 0"

    def _header(self, node: q.Header) -> str:
        self.needs_blob = True
        name = node.name.lower()
        column = HEADER_COLUMNS.get(name)
        if column is None:
            return (
                "pr_header((SELECT data FROM blob_data WHERE blob = b.id), b.sha256,"
                f" {self._param(name)}, {self._param(node.text.casefold())})"
            )
        self.described = True
        if not node.text:
            return f"b.{column} IS NOT NULL"
        return f"ifnull(instr(b.{column}, {self._param(node.text.casefold())}), 0) > 0"

    def _fulltext(self, text: str, column: str | None) -> str:
        if not text:
            return "1"
        self.described = True
        columns = [column] if column else ["headers", "body"]

        def check() -> str:
            tests = " OR ".join(
                f"pr_contains({BODY_TEXT if c == 'body' else 't.' + c},"
                f" {self._param(text.lower())})"
                for c in columns
            )
            return f"({tests})"

        # Parameters are numbered in the order the placeholders appear.
        query = trigram_query(text)
        if query is None:  # nothing to look up: every text is checked
            return f"m.blob IN (SELECT t.blob FROM texts t WHERE {check()})"
        match = self._param(query)
        indexed = (
            "m.blob IN (SELECT t.blob FROM texts t"
            f" WHERE t.blob IN (SELECT rowid FROM fts WHERE fts MATCH {match}) AND {check()})"
        )
        # Texts not indexed yet (textindex.py) are checked directly; there are few.
        pending = (
            "m.blob IN (SELECT t.blob FROM texts t"
            f" WHERE t.blob IN (SELECT blob FROM fts_pending) AND {check()})"
        )
        return f"({indexed} OR {pending})"

    def _body(self, node: q.Body) -> str:
        return self._fulltext(node.text, "body")

    def _text(self, node: q.Text) -> str:
        return self._fulltext(node.text, None)

    def _size(self, node: q.Size) -> str:
        if node.op not in ("<", ">"):
            raise ValueError(f"bad size comparison {node.op!r}")
        return f"m.size {node.op} {self._param(node.octets)}"

    def _internaldate(self, node: q.InternalDate) -> str:
        # RFC 9051 §6.4.4: dates in the server's time zone, disregarding time.
        start = self._param(day_start(node.day))
        if node.op == "<":
            return f"m.internaldate < {start}"
        if node.op == ">=":
            return f"m.internaldate >= {start}"
        if node.op == "=":
            end = self._param(day_start(node.day + timedelta(days=1)))
            return f"(m.internaldate >= {start} AND m.internaldate < {end})"
        raise ValueError(f"bad date comparison {node.op!r}")

    def _sentdate(self, node: q.SentDate) -> str:
        # RFC 9051 §6.4.4: the Date: header's own date, disregarding time and time zone;
        # without a usable Date: the internal date stands in (as RFC 5256 §2.2 does for SORT).
        self.needs_blob = True
        self.described = True
        op = {"<": "<", "=": "=", ">=": ">="}.get(node.op)
        if op is None:
            raise ValueError(f"bad date comparison {node.op!r}")
        day = self._param(day_number(node.day))
        local_day = "CAST(strftime('%Y%m%d', m.internaldate, 'unixepoch', 'localtime') AS INTEGER)"
        return f"ifnull(b.sent_day, {local_day}) {op} {day}"

    def _modseq(self, node: q.ModSeq) -> str:
        return f"m.modseq >= {self._param(node.at_least)}"


def compile_search(mailbox_id: int, node: q.Query) -> Compiled:
    """SQL returning the matching uids of ``mailbox_id`` in ascending order."""
    compiler = _Compiler(mailbox_id)
    where = compiler.node(node)
    join = " JOIN blobs b ON b.id = m.blob" if compiler.needs_blob else ""
    sql = f"SELECT m.uid FROM messages m{join} WHERE m.mailbox_id = ? AND {where} ORDER BY m.uid"
    return Compiled(sql, [mailbox_id, *compiler.params], compiler.described)


def trigram_query(text: str) -> str | None:
    """FTS5 query for the texts with words holding every trigram inside the words of
    ``text`` (at most ``MAX_TRIGRAMS`` of them, spread over it): a superset of the texts
    containing ``text``, since each word of a needle found in a text lies inside a word of
    that text; the substring check then narrows it.  None when ``text`` has no word of three
    characters or more (the texts are then checked one by one)."""
    grams = list(
        dict.fromkeys(
            word[i : i + TRIGRAM]
            for word in WORD.findall(text.lower())
            for i in range(len(word) - TRIGRAM + 1)
        )
    )
    if not grams:
        return None
    if len(grams) > MAX_TRIGRAMS:
        step = len(grams) / MAX_TRIGRAMS
        grams = [grams[int(i * step)] for i in range(MAX_TRIGRAMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def day_start(day: date) -> float:
    """Epoch seconds of local midnight starting ``day``."""
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day
