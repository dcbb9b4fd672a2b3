"""SQLite schema of the embedded store, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` moves a database from version ``i`` to ``i + 1``; migrations are only ever
appended, never edited, so a data folder created by any release opens with any later one.

Layout choices (why):

- ``messages`` is a WITHOUT ROWID table keyed by ``(mailbox_id, uid)``: a mailbox's messages
  are stored together in UID order, so SELECT (every uid, flags, modseq) is one sequential scan.
- System flags are a bitmask (``FLAG_BITS``) and keywords a space-separated string, so
  ``message_flags`` reads three small columns per message; a partial index on unseen
  messages answers ``SEARCH UNSEEN`` and STATUS UNSEEN's first uid without a scan.
- What is parsed once per message (DESIGN principle 4) lives in ``blobs``, one row per distinct
  content: a COPY or a delivery to several mailboxes shares the file, the parse result and the
  full-text entry.  ``refcount`` is kept by triggers, so every way a message row disappears
  (expunge, mailbox or account deletion through ON DELETE CASCADE) releases its blob.  A
  blob is stored with an empty ``meta`` and no ``texts`` row, and described (parsed) right
  after (describe.py).
- Mailbox counters (messages, unseen, deleted, size) and account usage are kept by triggers
  (unseen/deleted changes by flag updates: by store_flags, one UPDATE per command), so STATUS
  and QUOTA never count rows.
- Full-text search uses FTS5 with the trigram tokenizer and ``detail = none`` over each
  text's vocabulary (its distinct lower-cased words, textindex.py): the index knows which
  texts have a word containing each three-character sequence, not where, so the trigrams
  inside a needle's words select candidates and a substring check of the stored text
  (``texts``) confirms them (search.py) — IMAP's case-insensitive substring semantics
  (RFC 9051 §6.4.4) with an index about a sixth the size of a positional one, and built from
  a vocabulary several times shorter than the text.  The acknowledging commit writes the
  text once, into ``texts``, and its id into ``fts_pending``; textindex.py indexes pending
  texts later, in bigger batches; searches check pending texts directly.
"""

from __future__ import annotations

import sqlite3

# Bit of each system flag in messages.flags (RFC 9051 §2.3.2).
FLAG_BITS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}
SEEN = FLAG_BITS["\\Seen"]
DELETED = FLAG_BITS["\\Deleted"]

_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE domains (
    name TEXT PRIMARY KEY
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL REFERENCES domains(name),
    password_hash TEXT NOT NULL,
    scram_salt BLOB,
    scram_iterations INTEGER,
    scram_stored_key BLOB,
    scram_server_key BLOB,
    quota INTEGER,
    used_messages INTEGER NOT NULL DEFAULT 0,
    used_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_domain ON accounts(domain);

CREATE TABLE aliases (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    domain TEXT NOT NULL REFERENCES domains(name),
    UNIQUE (source, target)
);
CREATE INDEX aliases_domain ON aliases(domain);

CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL UNIQUE,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    special_use TEXT,
    recent_uid INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    unseen INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE blobs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    refcount INTEGER NOT NULL DEFAULT 0,
    meta BLOB NOT NULL,
    subject TEXT,
    from_addr TEXT,
    to_addr TEXT,
    cc_addr TEXT,
    bcc_addr TEXT,
    message_id TEXT,
    sent_date REAL,
    sent_day INTEGER
);
CREATE INDEX blobs_unreferenced ON blobs(id) WHERE refcount <= 0;

CREATE TABLE messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    keywords TEXT,
    internaldate REAL NOT NULL,
    size INTEGER NOT NULL,
    blob INTEGER NOT NULL REFERENCES blobs(id),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE flags & 1 = 0;
CREATE INDEX messages_blob ON messages(blob);

CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);

CREATE VIRTUAL TABLE fts USING fts5(headers, body, tokenize = 'trigram', detail = none);

CREATE TABLE fts_pending (
    blob INTEGER PRIMARY KEY,
    headers TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
    UPDATE blobs SET refcount = refcount + 1 WHERE id = new.blob;
    UPDATE mailboxes SET
        messages = messages + 1,
        unseen = unseen + (new.flags & 1 = 0),
        deleted = deleted + (new.flags & 8 != 0),
        size = size + new.size
    WHERE id = new.mailbox_id;
    UPDATE accounts SET used_messages = used_messages + 1, used_bytes = used_bytes + new.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = new.mailbox_id);
END;

CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE id = old.blob;
    UPDATE mailboxes SET
        messages = messages - 1,
        unseen = unseen - (old.flags & 1 = 0),
        deleted = deleted - (old.flags & 8 != 0),
        size = size - old.size
    WHERE id = old.mailbox_id;
    UPDATE accounts SET used_messages = used_messages - 1, used_bytes = used_bytes - old.size
    WHERE id = (SELECT account_id FROM mailboxes WHERE id = old.mailbox_id);
END;

CREATE TRIGGER messages_flags AFTER UPDATE OF flags ON messages
WHEN (old.flags & 9) != (new.flags & 9) BEGIN
    UPDATE mailboxes SET
        unseen = unseen + (new.flags & 1 = 0) - (old.flags & 1 = 0),
        deleted = deleted + (new.flags & 8 != 0) - (old.flags & 8 != 0)
    WHERE id = new.mailbox_id;
END;

CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN
    DELETE FROM fts WHERE rowid = old.id;
    DELETE FROM fts_pending WHERE blob = old.id;
END;
"""

# Message bytes up to sqlite.INLINE_MAX are kept in the database, the rest in blob files:
# the acknowledging commit alone then makes a typical message durable (one WAL fsync per
# batch), where a file costs fsyncs of its own and of its directory.  A blob is inline or a
# file for good, whatever INLINE_MAX is when it is read.
_V2 = """
CREATE TABLE blob_data (
    blob INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
"""

# store_flags keeps the unseen/deleted counters itself, with one UPDATE per STORE command from
# the deltas it computes anyway: the per-row trigger cost an UPDATE of the mailbox row for each
# message whose \Seen or \Deleted changed (1,000 of them for a STORE over 1,000 UIDs).
_V3 = """
DROP TRIGGER messages_flags;
"""

# Texts are written once, into ``texts``, and the index covers each text's vocabulary
# instead of the whole text: trigrams of 100 KB of prose cost FTS5 about 18 ms, of its
# distinct words a few, and the text no longer passes through fts_pending into the index's
# own copy.  The index's content is ``text_words`` (FTS5 external content, kept in step by
# text_words_delete).  Every existing text is pending again, so the background indexer
# rebuilds the index while searches check those texts directly meanwhile.
_V4 = """
CREATE TABLE texts (
    blob INTEGER PRIMARY KEY,
    headers TEXT NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO texts (blob, headers, body) SELECT rowid, headers, body FROM fts;
INSERT OR IGNORE INTO texts (blob, headers, body) SELECT blob, headers, body FROM fts_pending;
DROP TABLE fts;
DROP TABLE fts_pending;
CREATE TABLE fts_pending (
    blob INTEGER PRIMARY KEY
);
INSERT INTO fts_pending (blob) SELECT blob FROM texts;
CREATE TABLE text_words (
    blob INTEGER PRIMARY KEY,
    words TEXT NOT NULL
);
CREATE VIRTUAL TABLE fts USING fts5(
    words, content = 'text_words', content_rowid = 'blob', tokenize = 'trigram', detail = none
);
CREATE TRIGGER text_words_delete AFTER DELETE ON text_words BEGIN
    INSERT INTO fts (fts, rowid, words) VALUES ('delete', old.blob, old.words);
END;
DROP TRIGGER blobs_delete;
CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN
    DELETE FROM text_words WHERE blob = old.id;
    DELETE FROM fts_pending WHERE blob = old.id;
    DELETE FROM texts WHERE blob = old.id;
END;
"""

# Most mail's body text is its raw body as it is (plain text, 7bit or 8bit, UTF-8 or ASCII):
# such a text is not written a second time.  ``body_at`` then says where in the stored
# message (blob_data) the text starts, and ``body`` is empty (textindex.BODY_TEXT reads it).
_V5 = """
ALTER TABLE texts ADD COLUMN body_at INTEGER;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)

VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """The database was written by a newer postroom than this one."""


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to ``VERSION``; safe when several processes open it at once
    (each migration runs under the write lock and re-reads the version inside it)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise SchemaError(
                f"database schema version {version} is newer than this postroom ({VERSION})"
            )
        for number in range(version, VERSION):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete statement in migration: {current.strip()[:60]}")
    return statements
