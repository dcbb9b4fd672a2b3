"""After acknowledging: describing stored messages (describe.py) and moving their texts into
the FTS5 trigram index, off the write path.

Indexing a message's text costs about one trigram per character, far more than the rest of
storing it, and FTS5 writes a new index segment at every savepoint, so indexing inside each
acknowledging operation made the index the bottleneck of ingest and let one huge text stall
every other writer.  Instead the acknowledging commit only stores the message, undescribed,
and its id in ``fts_pending``; the writer thread calls :func:`index_step` when it has nothing
else to do (and every few batches under sustained load, so the backlog stays bounded), each
step a bounded chunk in its own transaction: it describes the messages no reader described
first (which stores their text in ``texts``) and indexes their texts.  Searches describe the
messages they would miss and look at the index and at the pending texts, so a message is
found from the moment its append returned.
"""

from __future__ import annotations

import re
import sqlite3
import string
from collections.abc import Callable
from contextlib import AbstractContextManager

from postroom.store.describe import UNDESCRIBED, Description, record

# What a word is in a needle (search.py): every run of word characters of a needle found in
# a text lies inside one token of the text's vocabulary.
WORD = re.compile(r"\w+")
# Tokens of the vocabulary are split at ASCII white space and punctuation (never at "_", a
# word character), with bytes methods on the UTF-8 text: ASCII bytes never occur inside a
# multi-byte character, and str.translate with a mapping cost twenty times as much.  The
# separators str.split() would also take (0x1c-0x1f) become spaces too; other white space
# (a no-break space) only makes a token longer, which loses no match.
_PUNCTUATION = string.punctuation.replace("_", "").encode()
_GAPS = bytes(32 if b in _PUNCTUATION or 0x1C <= b <= 0x1F else b for b in range(256))
_LOWER_GAPS = _GAPS.translate(bytes(range(256)).lower())  # for ASCII: lower-case as well

# A text's body as SQL (texts aliased ``t``): stored, or the tail of the stored message when
# that is the text as it is (``texts.body_at``, schema version 5).
BODY_TEXT = (
    "CASE WHEN t.body_at IS NULL THEN t.body ELSE CAST(substr("
    "(SELECT data FROM blob_data WHERE blob = t.blob), t.body_at + 1) AS TEXT) END"
)

# Parses a stored message (describe.py); None when it is gone.
Describe = Callable[[sqlite3.Connection, int, str], "Description | None"]

# Characters of text indexed per step at most (at least one message per step): bounds how
# long a step holds the write lock in front of acknowledgements.
STEP_CHARS = 512 * 1024
STEP_ROWS = 256


def vocabulary(*texts: str) -> str:
    """The distinct lower-cased words of ``texts``: every trigram inside a word of the texts
    is a trigram of this, which is all a search needs (search.trigram_query)."""
    words: dict[bytes, None] = {}
    for text in texts:
        if text.isascii():  # most mail: lower-cased by the same one pass
            raw = text.encode().translate(_LOWER_GAPS)
        else:
            raw = text.lower().encode("utf-8", "surrogatepass").translate(_GAPS)
        words.update(dict.fromkeys(raw.split()))
    return b" ".join(words).decode("utf-8", "surrogatepass")


def index_step(
    conn: sqlite3.Connection, write: AbstractContextManager[object], describe: Describe
) -> int:
    """Describe and index one chunk of pending messages; returns how many are still pending.
    The descriptions and vocabularies, the step's costly part, are made before it takes the
    write lock (``write``), so deliveries keep committing meanwhile."""
    # blob, sha256, description when this step made it, words
    chosen: list[tuple[int, str | None, Description | None, str]] = []
    chars = 0
    conn.execute("BEGIN")  # one snapshot for the reading
    try:
        for blob, sha256, meta, headers, body in conn.execute(
            f"SELECT p.blob, b.sha256, b.meta, ifnull(t.headers, ''), ifnull({BODY_TEXT}, '')"
            " FROM fts_pending p LEFT JOIN blobs b ON b.id = p.blob"
            " LEFT JOIN texts t ON t.blob = p.blob"
            " ORDER BY p.blob LIMIT ?",
            (STEP_ROWS,),
        ).fetchall():
            description = None
            if meta == UNDESCRIBED and sha256 is not None:
                description = describe(conn, blob, sha256)
                if description is None:  # its file went: so did its row, after our snapshot
                    continue
                headers, body = description.headers_text, description.text
            cost = len(headers) + len(body)
            if chosen and chars + cost > STEP_CHARS:
                break
            chosen.append((blob, sha256, description, vocabulary(headers, body)))
            chars += cost
    finally:
        conn.execute("COMMIT")
    # A lost step is redone after a crash (the pending rows go with it), so it needs no fsync;
    # the next acknowledging commit (synchronous FULL) makes it durable anyway.
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        with write:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Only texts still pending, and still of the same message: a blob id can be
                # given again once its message went (and its pending row with it).
                words = []
                for blob, sha256, description, terms in chosen:
                    if conn.execute(
                        "DELETE FROM fts_pending WHERE blob = ?"
                        " AND (SELECT sha256 FROM blobs WHERE id = ?) IS ? RETURNING blob",
                        (blob, blob, sha256),
                    ).fetchone():
                        if description is not None and sha256 is not None:
                            record(conn, blob, sha256, description)
                        words.append((blob, terms))
                conn.executemany("INSERT INTO text_words (blob, words) VALUES (?, ?)", words)
                conn.executemany("INSERT INTO fts (rowid, words) VALUES (?, ?)", words)
                left = conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("PRAGMA synchronous = FULL")
    return left
