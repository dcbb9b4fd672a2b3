"""The embedded store: SQLite (WAL) for metadata and most message bytes, content-addressed
files for large messages.

Writes go through one writer thread with group commit (writer.py; a caller whose loop serves
one session only may commit on its own thread); reads run on a small pool of threads (point
lookups on the caller's thread), each with its own connection, and see a consistent WAL
snapshot per call.

A message of up to ``INLINE_MAX`` bytes is stored in the database by the operation that files
it, so its one commit (one WAL fsync, shared by the whole batch) makes it durable; a larger
one is first written to its blob file by a worker thread, and the writer fsyncs the file's
directory before the commit that makes it visible, so a committed row always points to a
complete, durable file (blobs.py).  Either way it is parsed once: the first kind after that
commit, the second while its file is written (describe.py).

Several processes may open the same data folder (the CLI and the SMTP worker processes next
to ``postroom serve``): their writers take turns on the folder's write lock (writelock.py), and
every read sees what any process committed.  An SMTP worker's store reports each batch it
commits (``report``) to the server process, whose store announces the changes to its own
sessions, indexes the texts and checkpoints the log (``committed_elsewhere``): the worker's
store does no background work.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from postroom import log, mime
from postroom.config import Limits
from postroom.store import blobs as blobfiles
from postroom.store import schema
from postroom.store.base import (
    DEFAULT_MAILBOXES,
    Account,
    Alias,
    AlreadyExists,
    AppendResult,
    Changes,
    CopyResult,
    Credentials,
    Delivery,
    FlagMode,
    Invalid,
    Mailbox,
    MailboxStatus,
    Message,
    MessageFlags,
    NotFound,
    OverQuota,
    ScramSecrets,
    Store,
    StoreError,
    StoreResult,
    Usage,
)
from postroom.store.checkpoint import Checkpointer
from postroom.store.describe import UNDESCRIBED, Description, describe, record
from postroom.store.directory import Directory
from postroom.store.flagcache import FlagsCache
from postroom.store.notifier import Change, ChangeKind, InProcessNotifier, Notifier
from postroom.store.query import Query
from postroom.store.schema import DELETED, FLAG_BITS, SEEN
from postroom.store.search import compile_search
from postroom.store.textindex import index_step
from postroom.store.writelock import WriteLock
from postroom.store.writer import OpContext, Writer, unlink_unreferenced

T = TypeVar("T")
# Descriptions a reader made, by blob id, with the blob's sha256.
Described = dict[int, tuple[str, Description]]

DB_NAME = "postroom.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction
READ_THREADS = 4
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes kept of the write-ahead log between bursts
IO_THREADS = 16  # blob writes (fsync-bound) and parsing, concurrently
# Messages up to this size are kept in the database (schema V2): one WAL fsync per batch
# instead of a file's data and directory fsyncs.  Above it the extra fsyncs cost less than
# writing the bytes twice (WAL, then checkpoint) and keep the database small.
INLINE_MAX = 128 * 1024
# Bounds on what a client can make the store keep.
MAX_MAILBOX_NAME = 1000  # bytes of UTF-8
MAX_MAILBOX_DEPTH = 64
MAX_MAILBOXES = 10000  # per account
MAX_SUBSCRIPTIONS = 10000  # per account
MAX_KEYWORDS = 256  # per message
MAX_KEYWORD = 250  # characters
MAX_ALIAS_TARGETS = 1000
# RFC 9051 §9 atom-specials: a keyword is an atom.
_KEYWORD_SPECIALS = frozenset('(){ %*"\\]')
_FLAG_BITS_FOLDED = {name.lower(): bit for name, bit in FLAG_BITS.items()}
_INBOX = "INBOX"


_MAILBOX_COLUMNS = (
    "mb.id, mb.account_id, mb.name, mb.uidvalidity, mb.uidnext, mb.highestmodseq, mb.special_use,"
    " EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mb.account_id"
    " AND s.name = mb.name)"
)
_ACCOUNT_COLUMNS = "id, address, quota"


@dataclass(slots=True)
class Prepared:
    """A message ready for the commit that stores it: kept in the database and described
    after that commit, or written to its file and described already (describe.py)."""

    blob_id: str
    data: bytes
    inline: bool  # kept in the database; else in a file, renamed into ``dirs[0]``
    dirs: tuple[Path, ...]  # to fsync before the commit that first references the file
    description: Description | None  # of a message kept in a file


class SqliteStore(Store):
    def __init__(
        self,
        data_dir: Path,
        notifier: Notifier | None = None,
        limits: Limits | None = None,
        *,
        inline_max: int = INLINE_MAX,
        report: Callable[[list[Change]], None] | None = None,
        solo: Callable[[], bool] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.notifier = notifier if notifier is not None else InProcessNotifier()
        self.limits = limits if limits is not None else Limits()
        self.inline_max = inline_max
        # An SMTP worker's: hears of every commit (on the writer thread, with its changes).
        self.report = report
        # Whether the caller's event loop has nothing to do but its one session: then a
        # write may be committed on the loop's thread (writer.py).
        self._solo = solo if solo is not None else _never
        self._db_path = self.data_dir / DB_NAME
        self._blobs = blobfiles.BlobFiles(self.data_dir / "blobs")
        self._directory = Directory(self.data_dir)
        self._writer: Writer | None = None
        self._checkpointer: Checkpointer | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._io_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._marker: Path | None = None
        self._flagsets: dict[tuple[int, str | None], frozenset[str]] = {}
        self._flags_cache = FlagsCache(self._flagset)
        self._delivering: set[asyncio.Future[Any]] = set()
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._writer is not None or self._read_pool is not None:
            return
        await asyncio.to_thread(self._open_sync)
        self._read_pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="postroom-read")
        self._io_pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="postroom-blob")
        committed = self.report
        if committed is None:
            self._checkpointer = Checkpointer(self._connect, WriteLock(self.data_dir))
            self._checkpointer.start()
            committed = self._checkpointer.nudge
        self._writer = Writer(
            self._connect,
            self._blobs,
            self.notifier,
            self._background if self.report is None else None,
            WriteLock(self.data_dir),
            committed,
        )
        self._writer.start()

    def _open_sync(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._blobs.setup()
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self._db_path}: cannot use WAL journal mode ({mode})")
            schema.migrate(conn)
            self._directory.open()
            crashed = self._blobs.crashed_owners()
            self._blobs.clean_tmp()
            if crashed:
                self._directory.changed()  # it may have died between a commit and its news
                removed = self._remove_orphans(conn)
                for marker in crashed:
                    marker.unlink(missing_ok=True)
                log.event("store_recovered", crashed=len(crashed), orphan_blobs=removed)
            self._marker = self._blobs.claim()
        finally:
            conn.close()

    def _remove_orphans(self, conn: sqlite3.Connection) -> int:
        """Delete blob files no row references: written before a commit that never happened,
        or released by a commit whose unlink a crash prevented.  Each chunk is checked and
        unlinked in one write transaction (writer.unlink_unreferenced)."""
        ids = list(self._blobs.all_ids())
        return sum(
            unlink_unreferenced(conn, self._blobs, ids[start : start + 500])
            for start in range(0, len(ids), 500)
        )

    async def close(self) -> None:
        if self._writer is None and self._read_pool is None:
            return
        self._closing = True
        while self._delivering:
            await asyncio.gather(*self._delivering, return_exceptions=True)
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        pools = (self._io_pool, self._read_pool)
        self._io_pool = self._read_pool = None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)
        with self._lock:
            conns, self._read_conns = self._read_conns, []
        for conn in conns:
            conn.close()
        self._directory.close()
        self._local = threading.local()  # event loop threads outlive a close()
        if self._marker is not None:
            self._marker.unlink(missing_ok=True)
            self._marker = None
        self._closing = False

    def committed_elsewhere(self, changes: Sequence[Change]) -> None:
        """Changes another process's writer committed (an SMTP worker's deliveries): they are
        announced to this process's sessions, their texts indexed and their log pages
        checkpointed here, as if this process had committed them.  Safe from any thread."""
        for change in changes:
            self.notifier.publish(change)
        if self._writer is not None:  # at most a text per message; the step counts exactly
            added = sum(change.kind is ChangeKind.MESSAGES_ADDED for change in changes)
            self._writer.add_background(max(added, 1))
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._db_path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: in WAL mode, NORMAL would not fsync at commit, and we acknowledge at commit.
        conn.execute("PRAGMA synchronous = FULL")
        # After a burst the WAL is truncated back to this size at the next checkpoint.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        return conn

    # -- plumbing ------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            conn.create_function("pr_contains", 2, _contains, deterministic=True)
            conn.create_function("pr_header", 4, self._header_contains)
            self._local.conn = conn
            with self._lock:
                self._read_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    def _lookup(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A point lookup (an index seek for one row or a few, pages the server keeps hot)
        runs on the calling thread: the hop to a read thread and back costs the event loop
        more than the lookup itself, and SMTP makes several per message (domain, alias,
        account, INBOX).  Anything that can grow with the data goes through ``_read``.
        A lookup is one statement, consistent on its own, so it needs no BEGIN/COMMIT."""
        if self._read_pool is None:
            raise StoreError("the store is not open")
        return fn(self._reader())

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._read_pool is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._run_read, fn)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Blob file work and parsing, off the event loop and concurrently."""
        if self._io_pool is None:
            raise StoreError("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    async def _write(
        self, fn: Callable[[sqlite3.Connection, OpContext], T], files: Iterable[str] = ()
    ) -> T:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(fn, files, here=self._solo())

    def _directory_changes(self, ctx: OpContext) -> None:
        """An operation changes domains, aliases or accounts: cached answers go, in every
        process, now and once it is committed (directory.py)."""
        self._directory.changed()
        ctx.on_commit.append(self._directory.changed)

    def _flagset(self, bits: int, keywords: str | None) -> frozenset[str]:
        """Flag sets are shared: a mailbox has few distinct ones, and SELECT of a large
        mailbox builds one per message."""
        key = (bits, keywords)
        flags = self._flagsets.get(key)
        if flags is None:
            names = [name for name, bit in FLAG_BITS.items() if bits & bit]
            if keywords:
                names.extend(keywords.split(" "))
            flags = frozenset(names)
            if len(self._flagsets) > 4096:
                self._flagsets.clear()
            self._flagsets[key] = flags
        return flags

    # -- domains -------------------------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        domain = _domain(name)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            try:
                conn.execute("INSERT INTO domains (name) VALUES (?)", (domain,))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {domain} exists") from None

        await self._write(op)

    async def remove_domain(self, name: str) -> None:
        domain = name.lower()

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            if conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is None:
                raise NotFound(f"domain {domain} is not hosted")
            accounts = conn.execute(
                "SELECT count(*) FROM accounts WHERE domain = ?", (domain,)
            ).fetchone()[0]
            aliases = conn.execute(
                "SELECT count(DISTINCT source) FROM aliases WHERE domain = ?", (domain,)
            ).fetchone()[0]
            if accounts or aliases:
                raise Invalid(
                    f"domain {domain} still has {accounts} account(s) and {aliases} alias(es)"
                )
            conn.execute("DELETE FROM domains WHERE name = ?", (domain,))

        await self._write(op)

    async def list_domains(self) -> list[str]:
        return await self._read(
            lambda conn: [r[0] for r in conn.execute("SELECT name FROM domains ORDER BY name")]
        )

    async def has_domain(self, name: str) -> bool:
        domain = name.lower()
        return self._directory.get(
            ("domain", domain),
            lambda: self._lookup(
                lambda conn: (
                    conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone()
                    is not None
                )
            ),
        )

    # -- accounts ------------------------------------------------------------------------
    async def create_account(
        self,
        address: str,
        password_hash: str,
        scram_sha256: ScramSecrets | None,
        quota: int | None = None,
    ) -> Account:
        addr = _address(address)
        domain = addr.rpartition("@")[2]
        _check_quota_value(quota)
        scram = _scram_columns(scram_sha256)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> Account:
            self._directory_changes(ctx)
            if conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is None:
                raise Invalid(f"domain {domain} is not hosted")
            try:
                cur = conn.execute(
                    "INSERT INTO accounts (address, domain, password_hash, scram_salt,"
                    " scram_iterations, scram_stored_key, scram_server_key, quota)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (addr, domain, password_hash, *scram, quota),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"account {addr} exists") from None
            account_id = cur.lastrowid
            assert account_id is not None
            for name, special_use in DEFAULT_MAILBOXES:
                mailbox_id = _insert_mailbox(conn, account_id, name, special_use)
                conn.execute(
                    "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)",
                    (account_id, name),
                )
                ctx.announce(Change(account_id, mailbox_id, ChangeKind.MAILBOX_CREATED))
            return Account(account_id, addr, quota)

        return await self._write(op)

    async def set_password(
        self, address: str, password_hash: str, scram_sha256: ScramSecrets | None
    ) -> None:
        addr = address.lower()
        scram = _scram_columns(scram_sha256)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            cur = conn.execute(
                "UPDATE accounts SET password_hash = ?, scram_salt = ?, scram_iterations = ?,"
                " scram_stored_key = ?, scram_server_key = ? WHERE address = ?",
                (password_hash, *scram, addr),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no account {addr}")

        await self._write(op)

    async def set_quota(self, address: str, quota: int | None) -> None:
        addr = address.lower()
        _check_quota_value(quota)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            cur = conn.execute("UPDATE accounts SET quota = ? WHERE address = ?", (quota, addr))
            if cur.rowcount == 0:
                raise NotFound(f"no account {addr}")

        await self._write(op)

    async def remove_account(self, address: str) -> None:
        addr = address.lower()

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            row = conn.execute("SELECT id FROM accounts WHERE address = ?", (addr,)).fetchone()
            if row is None:
                raise NotFound(f"no account {addr}")
            account_id = row[0]
            for (mailbox_id,) in conn.execute(
                "SELECT id FROM mailboxes WHERE account_id = ?", (account_id,)
            ).fetchall():
                ctx.announce(Change(account_id, mailbox_id, ChangeKind.MAILBOX_DELETED))
            # Cascades to mailboxes, messages (releasing blobs), tombstones, subscriptions.
            conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))

        await self._write(op)

    async def get_account(self, address: str) -> Account | None:
        addr = address.lower()
        return self._directory.get(
            ("account", addr),
            lambda: self._lookup(
                lambda conn: _account(
                    conn.execute(
                        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE address = ?", (addr,)
                    ).fetchone()
                )
            ),
        )

    async def get_account_by_id(self, account_id: int) -> Account | None:
        return self._lookup(
            lambda conn: _account(
                conn.execute(
                    f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
                ).fetchone()
            )
        )

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        def read(conn: sqlite3.Connection) -> list[Account]:
            if domain is None:
                rows = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY address")
            else:
                rows = conn.execute(
                    f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE domain = ? ORDER BY address",
                    (domain.lower(),),
                )
            return [Account(*row) for row in rows]

        return await self._read(read)

    async def get_credentials(self, address: str) -> Credentials | None:
        addr = address.lower()

        def read(conn: sqlite3.Connection) -> Credentials | None:
            row = conn.execute(
                "SELECT id, address, quota, password_hash, scram_salt, scram_iterations,"
                " scram_stored_key, scram_server_key FROM accounts WHERE address = ?",
                (addr,),
            ).fetchone()
            if row is None:
                return None
            scram = None
            if row[4] is not None:
                scram = ScramSecrets(bytes(row[4]), row[5], bytes(row[6]), bytes(row[7]))
            return Credentials(Account(row[0], row[1], row[2]), row[3], scram)

        return self._lookup(read)

    async def usage(self, account_id: int) -> Usage:
        def read(conn: sqlite3.Connection) -> Usage:
            row = conn.execute(
                "SELECT used_messages, used_bytes FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no account {account_id}")
            return Usage(row[0], row[1])

        return self._lookup(read)

    # -- aliases -------------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> None:
        src = _alias_source(source)
        domain = src.rpartition("@")[2]
        wanted = list(dict.fromkeys(_address(t) for t in targets))
        if not wanted:
            raise Invalid("an alias needs at least one target")

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            if conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() is None:
                raise Invalid(f"domain {domain} is not hosted")
            conn.executemany(
                "INSERT OR IGNORE INTO aliases (source, target, domain) VALUES (?, ?, ?)",
                [(src, target, domain) for target in wanted],
            )
            count = conn.execute(
                "SELECT count(*) FROM aliases WHERE source = ?", (src,)
            ).fetchone()[0]
            if count > MAX_ALIAS_TARGETS:
                raise Invalid(f"an alias has at most {MAX_ALIAS_TARGETS} targets")

        await self._write(op)

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        src = source.lower()
        unwanted = [t.lower() for t in targets]

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            self._directory_changes(ctx)
            present = {
                r[0] for r in conn.execute("SELECT target FROM aliases WHERE source = ?", (src,))
            }
            if not present:
                raise NotFound(f"no alias {src}")
            if not unwanted:
                conn.execute("DELETE FROM aliases WHERE source = ?", (src,))
                return
            missing = [t for t in unwanted if t not in present]
            if missing:
                raise NotFound(f"alias {src} has no target {missing[0]}")
            conn.executemany(
                "DELETE FROM aliases WHERE source = ? AND target = ?",
                [(src, target) for target in unwanted],
            )

        await self._write(op)

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        def read(conn: sqlite3.Connection) -> list[Alias]:
            if domain is None:
                rows = conn.execute("SELECT source, target FROM aliases ORDER BY source, id")
            else:
                rows = conn.execute(
                    "SELECT source, target FROM aliases WHERE domain = ? ORDER BY source, id",
                    (domain.lower(),),
                )
            grouped: dict[str, list[str]] = {}
            for source, target in rows:
                grouped.setdefault(source, []).append(target)
            return [Alias(source, tuple(t)) for source, t in grouped.items()]

        return await self._read(read)

    async def get_alias(self, source: str) -> Alias | None:
        src = source.lower()

        def read(conn: sqlite3.Connection) -> Alias | None:
            targets = [
                r[0]
                for r in conn.execute(
                    "SELECT target FROM aliases WHERE source = ? ORDER BY id", (src,)
                )
            ]
            return Alias(src, tuple(targets)) if targets else None

        return self._directory.get(("alias", src), lambda: self._lookup(read))

    # -- mailboxes -----------------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        return await self._read(
            lambda conn: [
                _mailbox(row)
                for row in conn.execute(
                    f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes mb WHERE mb.account_id = ?"
                    " ORDER BY mb.name",
                    (account_id,),
                )
            ]
        )

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        normal = _normal_name(name)
        return self._lookup(
            lambda conn: _mailbox(
                conn.execute(
                    f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes mb"
                    " WHERE mb.account_id = ? AND mb.name = ?",
                    (account_id, normal),
                ).fetchone()
            )
        )

    async def inbox_id(self, account_id: int) -> int | None:
        return self._directory.get(
            ("inbox", account_id),
            lambda: self._lookup(lambda conn: _mailbox_id(conn, account_id, _INBOX)),
        )

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        return self._lookup(lambda conn: _mailbox_by_id(conn, mailbox_id))

    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        normal = _check_name(name)
        if special_use is not None and not (special_use.startswith("\\") and special_use[1:]):
            raise Invalid(f"bad special-use attribute {special_use!r}")

        def op(conn: sqlite3.Connection, ctx: OpContext) -> Mailbox:
            _require_account(conn, account_id)
            if _mailbox_id(conn, account_id, normal) is not None:
                raise AlreadyExists(f"mailbox {normal} exists")
            count = conn.execute(
                "SELECT count(*) FROM mailboxes WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
            if count >= MAX_MAILBOXES:
                raise Invalid(f"an account has at most {MAX_MAILBOXES} mailboxes")
            mailbox_id = _insert_mailbox(conn, account_id, normal, special_use)
            ctx.announce(Change(account_id, mailbox_id, ChangeKind.MAILBOX_CREATED))
            mailbox = _mailbox_by_id(conn, mailbox_id)
            assert mailbox is not None
            return mailbox

        return await self._write(op)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        normal = _normal_name(name)
        if normal == _INBOX:
            raise Invalid("INBOX cannot be deleted")  # RFC 9051 §6.3.5

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            mailbox_id = _mailbox_id(conn, account_id, normal)
            if mailbox_id is None:
                raise NotFound(f"no mailbox {normal}")
            # Messages first, so the triggers still find the account to credit its usage.
            conn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
            conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
            ctx.announce(Change(account_id, mailbox_id, ChangeKind.MAILBOX_DELETED))

        await self._write(op)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        source = _normal_name(old)
        target = _check_name(new)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            mailbox_id = _mailbox_id(conn, account_id, source)
            if mailbox_id is None:
                raise NotFound(f"no mailbox {source}")
            if _mailbox_id(conn, account_id, target) is not None:
                raise AlreadyExists(f"mailbox {target} exists")
            if source == _INBOX:
                _rename_inbox(conn, ctx, account_id, mailbox_id, target)
                return
            if target.startswith(source + "/"):
                raise Invalid(f"cannot rename {source} into itself")
            prefix = source + "/"
            children = conn.execute(
                "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?",
                (account_id, len(prefix), prefix),
            ).fetchall()
            moves = [(mailbox_id, source, target)] + [
                (child_id, name, target + name[len(source) :]) for child_id, name in children
            ]
            for _, _, new_name in moves[1:]:
                _check_name(new_name)
                if _mailbox_id(conn, account_id, new_name) is not None:
                    raise AlreadyExists(f"mailbox {new_name} exists")
            for moved_id, old_name, new_name in moves:
                conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new_name, moved_id))
                # Subscriptions follow the mailbox, so a renamed folder stays visible.
                conn.execute(
                    "UPDATE OR IGNORE subscriptions SET name = ? WHERE account_id = ? AND name = ?",
                    (new_name, account_id, old_name),
                )
                ctx.announce(Change(account_id, moved_id, ChangeKind.MAILBOX_RENAMED))

        await self._write(op)

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        normal = _check_name(name)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            _require_account(conn, account_id)
            if not subscribed:
                conn.execute(
                    "DELETE FROM subscriptions WHERE account_id = ? AND name = ?",
                    (account_id, normal),
                )
                return
            count = conn.execute(
                "SELECT count(*) FROM subscriptions WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
            if count >= MAX_SUBSCRIPTIONS:
                raise Invalid(f"an account has at most {MAX_SUBSCRIPTIONS} subscriptions")
            conn.execute(
                "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
                (account_id, normal),
            )

        await self._write(op)

    async def list_subscriptions(self, account_id: int) -> list[str]:
        return await self._read(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name",
                    (account_id,),
                )
            ]
        )

    async def text_index_settled(self, timeout: float = 600.0) -> bool:
        """Wait until every stored text is in the full-text index (it is built in the
        background: benchmarks and tests measure the steady state); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self._read(
            lambda conn: conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0]
        ):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def status(self, mailbox_id: int) -> MailboxStatus:
        def read(conn: sqlite3.Connection) -> MailboxStatus:
            row = conn.execute(
                "SELECT messages, unseen, deleted, size, recent_uid, uidnext, uidvalidity,"
                " highestmodseq FROM mailboxes WHERE id = ?",
                (mailbox_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            messages, unseen, deleted, size, recent_uid, uidnext, uidvalidity, modseq = row
            recent = conn.execute(
                "SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid > ?",
                (mailbox_id, recent_uid),
            ).fetchone()[0]
            first_unseen = conn.execute(
                "SELECT min(uid) FROM messages WHERE mailbox_id = ? AND flags & 1 = 0",
                (mailbox_id,),
            ).fetchone()[0]
            return MailboxStatus(
                messages, unseen, deleted, size, recent, uidnext, uidvalidity, modseq, first_unseen
            )

        return await self._read(read)

    # -- messages: storing ---------------------------------------------------------------
    def prepare(self, data: bytes) -> Prepared:
        """Name the bytes; a message kept in a file is also written to it and parsed (then
        on an I/O thread)."""
        blob_id = blobfiles.digest(data)
        if len(data) <= self.inline_max:
            return Prepared(blob_id, data, True, (), None)
        dirs = self._blobs.write(blob_id, data)
        return Prepared(blob_id, data, False, dirs, describe(data, False, self.limits))

    def _blob_row(self, conn: sqlite3.Connection, ctx: OpContext, prepared: Prepared) -> int:
        """The blobs row of a prepared message, created if new (undescribed when its bytes
        are kept in the database)."""
        row = conn.execute(
            "INSERT INTO blobs (sha256, meta) VALUES (?, ?)"
            " ON CONFLICT (sha256) DO NOTHING RETURNING id",
            (prepared.blob_id, UNDESCRIBED),
        ).fetchall()
        if not row:
            return conn.execute(
                "SELECT id FROM blobs WHERE sha256 = ?", (prepared.blob_id,)
            ).fetchone()[0]
        blob = row[0][0]
        if prepared.inline:
            conn.execute("INSERT INTO blob_data (blob, data) VALUES (?, ?)", (blob, prepared.data))
        elif self._blobs.exists(prepared.blob_id):
            ctx.sync.update(prepared.dirs)
        else:
            # The same bytes were released and unlinked since we wrote them: write again.
            # We hold the write lock, so nobody can unlink it before our commit.
            ctx.sync.update(self._blobs.write(prepared.blob_id, prepared.data))
        if prepared.description is not None:
            record(conn, blob, prepared.blob_id, prepared.description)
        conn.execute("INSERT INTO fts_pending (blob) VALUES (?)", (blob,))
        ctx.background += 1
        return blob

    def _background(self, conn: sqlite3.Connection, lock: WriteLock) -> int:
        """The writer's background step: describe and index what was stored (textindex.py)."""
        return index_step(conn, lock, self._describe_blob)

    def _describe_blob(
        self, conn: sqlite3.Connection, blob: int, sha256: str
    ) -> Description | None:
        """Parse a stored message (None when it went meanwhile)."""
        row = conn.execute("SELECT data FROM blob_data WHERE blob = ?", (blob,)).fetchone()
        if row is not None:
            return describe(row[0], True, self.limits)
        try:
            return describe(self._blobs.read(sha256), False, self.limits)
        except FileNotFoundError:
            return None

    async def _record(self, described: Described) -> None:
        """Keep descriptions a reader made (describe.py: the first one made is kept).  Only
        a saving: when it fails, the reader still has them and the background step parses
        those messages again."""

        def op(conn: sqlite3.Connection, ctx: OpContext) -> None:
            for blob, (sha256, description) in described.items():
                record(conn, blob, sha256, description)

        try:
            await self._write(op)
        except (StoreError, sqlite3.Error) as exc:
            log.event("store_describe_failed", error=repr(exc))

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.limits.message_size:
            raise Invalid(f"message larger than {self.limits.message_size} bytes")

    async def _precheck(self, mailbox_ids: Sequence[int], size: int) -> None:
        """Refuse early (before writing a blob file) what the commit would refuse anyway."""

        def read(conn: sqlite3.Connection) -> None:
            needed: dict[int, int] = {}
            for mailbox_id in mailbox_ids:
                account_id = _mailbox_account(conn, mailbox_id)
                needed[account_id] = needed.get(account_id, 0) + size
            for account_id, extra in needed.items():
                _check_quota(conn, account_id, extra)

        await self._read(read)

    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
    ) -> AppendResult:
        results = await self.deliver([Delivery(mailbox_id, frozenset(flags))], data, internaldate)
        return results[0]

    async def deliver(
        self, targets: Sequence[Delivery], data: bytes, internaldate: float | None = None
    ) -> list[AppendResult]:
        """All or nothing: one blob, one commit; OverQuota names the first account over."""
        if not targets:
            raise Invalid("no delivery target")
        data = bytes(data)
        self._check_size(data)
        parsed_flags = [_parse_flags(t.flags) for t in targets]
        when = time.time() if internaldate is None else float(internaldate)
        if self._closing:
            raise StoreError("the store is closing")
        if len(data) <= self.inline_max:
            # A message kept in the database needs no file I/O, only its digest: done right
            # here, as a hop to a thread and back would cost more.  Once queued, the
            # operation runs whether or not the caller still waits, like every other write.
            op = self._deliver_op(targets, parsed_flags, self.prepare(data), when)
            return await self._write(op)
        await self._precheck([t.mailbox_id for t in targets], len(data))
        # Once the blob file is being written, finish even if the caller goes away: the
        # commit either happens or the writer removes the file (no orphan left behind).
        # close() waits for these.
        task = asyncio.ensure_future(self._deliver_file(targets, parsed_flags, data, when))
        self._delivering.add(task)
        task.add_done_callback(self._delivered)
        return await asyncio.shield(task)

    def _delivered(self, task: asyncio.Future[Any]) -> None:
        self._delivering.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away must not make it "lost"

    async def _deliver_file(
        self,
        targets: Sequence[Delivery],
        parsed_flags: list[tuple[int, dict[str, str]]],
        message: bytes,
        when: float,
    ) -> list[AppendResult]:
        try:
            prepared = await self._io(self.prepare, message)
        except OSError as exc:  # full disk, permissions: the message is not stored
            raise StoreError(f"cannot store the message: {exc.strerror or exc}") from exc
        op = self._deliver_op(targets, parsed_flags, prepared, when)
        return await self._write(op, files=(prepared.blob_id,))

    def _deliver_op(
        self,
        targets: Sequence[Delivery],
        parsed_flags: list[tuple[int, dict[str, str]]],
        prepared: Prepared,
        when: float,
    ) -> Callable[[sqlite3.Connection, OpContext], list[AppendResult]]:
        size = len(prepared.data)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> list[AppendResult]:
            blob = None
            results = []
            for target, (bits, keywords) in zip(targets, parsed_flags, strict=True):
                account_id, uidvalidity, uid, modseq, room = _allocate(conn, target.mailbox_id, 1)
                # Triggers keep usage current, so a second target in the same account sees
                # the first one's bytes (RFC 9208 §5.1: the quota is per account).
                if room is not None and size > room:
                    _over_quota(conn, account_id)
                if blob is None:
                    blob = self._blob_row(conn, ctx, prepared)
                conn.execute(
                    "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate,"
                    " size, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (target.mailbox_id, uid, modseq, bits, _keywords(keywords), when, size, blob),
                )
                ctx.announce(
                    Change(account_id, target.mailbox_id, ChangeKind.MESSAGES_ADDED, modseq)
                )
                results.append(AppendResult(uidvalidity, uid))
            return results

        return op

    # -- messages: reading ---------------------------------------------------------------
    async def message_flags(self, mailbox_id: int) -> list[MessageFlags]:
        return await self._read(lambda conn: self._flags_cache.read(conn, mailbox_id))

    async def uids(self, mailbox_id: int) -> list[int]:
        def read(conn: sqlite3.Connection) -> list[int]:
            _require_mailbox(conn, mailbox_id)
            rows = conn.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
            )
            return [r[0] for r in rows]

        return await self._read(read)

    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], *, meta: bool = True
    ) -> list[Message]:
        flagset = self._flagset
        describing = meta
        columns = (
            "SELECT m.uid, m.flags, m.keywords, m.modseq, m.internaldate, m.size, b.sha256,"
            " b.meta, m.blob FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ?"
        )
        lo, hi = (min(uids), max(uids)) if uids else (1, 0)
        wanted: set[int] | None = None
        if hi - lo < 2 * len(uids):
            # A range of UIDs (FETCH n:m, mostly without gaps): one scan of the primary key,
            # a third cheaper than matching a JSON list; the few others are filtered here.
            sql, params = f"{columns} AND m.uid BETWEEN ? AND ? ORDER BY m.uid", (lo, hi)
            if hi - lo + 1 != len(uids):
                wanted = set(uids)
        else:
            sql = f"{columns} AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid"
            params = (_json_ints(uids),)

        def read(conn: sqlite3.Connection) -> tuple[list[Message], Described]:
            _require_mailbox(conn, mailbox_id)
            messages = []
            described: Described = {}
            for uid, bits, kw, modseq, date, size, sha, meta, blob in conn.execute(
                sql, (mailbox_id, *params)
            ):
                if wanted is not None and uid not in wanted:
                    continue
                if meta == UNDESCRIBED and describing:  # stored moments ago: parsed here
                    if blob not in described:
                        description = self._describe_blob(conn, blob, sha)
                        if description is None:  # its file is missing: an empty message
                            meta = describe(b"", True, self.limits).meta
                        else:
                            described[blob] = (sha, description)
                    if blob in described:
                        meta = described[blob][1].meta
                messages.append(Message(uid, flagset(bits, kw), modseq, date, size, sha, meta))
            return messages, described

        messages, described = await self._read(read)
        if described:
            await self._record(described)
        return messages

    async def read_blob(self, blob_id: str) -> bytes:
        if not blobfiles.valid_id(blob_id):
            raise NotFound(f"no blob {blob_id!r}")
        data = await self._read(
            lambda conn: conn.execute(
                "SELECT d.data FROM blobs b JOIN blob_data d ON d.blob = b.id WHERE b.sha256 = ?",
                (blob_id,),
            ).fetchone()
        )
        if data is not None:
            return data[0]
        try:
            return await self._io(self._blobs.read, blob_id)
        except FileNotFoundError:
            raise NotFound(f"no blob {blob_id}") from None

    def _header_contains(self, inline: bytes | None, blob_id: str, name: str, needle: str) -> int:
        """SEARCH HEADER on a field without a column: read the message's header (SQL
        function pr_header, runs in a read thread; ``inline`` is the message if the
        database has it)."""
        try:
            data = inline if inline is not None else self._blobs.read(blob_id)
        except FileNotFoundError:
            return 0
        values = mime.header_values(data, name)
        return int(any(needle in value.casefold() for value in values))

    # -- messages: changing --------------------------------------------------------------
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Iterable[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        bits, keywords = _parse_flags(flags)
        wanted = _json_ints(uids)
        flagset = self._flagset

        def op(conn: sqlite3.Connection, ctx: OpContext) -> StoreResult:
            account_id = _mailbox_account(conn, mailbox_id)
            rows = conn.execute(
                "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?"
                " AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (mailbox_id, wanted),
            ).fetchall()
            failed: list[int] = []
            changes: list[tuple[int, int, str | None]] = []
            # Messages sharing old flags get the same new ones: apply each combination once.
            applied: dict[tuple[int, str | None], tuple[int, str | None]] = {}
            unseen = deleted = 0
            for uid, old_bits, old_keywords, modseq in rows:
                # RFC 7162 §3.1.3: refuse messages modified after UNCHANGEDSINCE.
                if unchangedsince is not None and modseq > unchangedsince:
                    failed.append(uid)
                    continue
                old = (old_bits, old_keywords)
                new = applied.get(old)
                if new is None:
                    new = applied[old] = _apply_flags(mode, old_bits, old_keywords, bits, keywords)
                if new != old:
                    new_bits = new[0]
                    changes.append((uid, new_bits, new[1]))
                    unseen += (old_bits & SEEN) - (new_bits & SEEN)
                    deleted += ((new_bits & DELETED) - (old_bits & DELETED)) // DELETED
            if not changes:
                return StoreResult((), tuple(failed))
            modseq = _bump_modseq(conn, mailbox_id)
            _write_flags(conn, mailbox_id, modseq, changes)
            if unseen or deleted:
                conn.execute(
                    "UPDATE mailboxes SET unseen = unseen + ?, deleted = deleted + ? WHERE id = ?",
                    (unseen, deleted, mailbox_id),
                )
            ctx.announce(Change(account_id, mailbox_id, ChangeKind.FLAGS_CHANGED, modseq))
            updated = tuple(MessageFlags(uid, flagset(b, k), modseq) for uid, b, k in changes)
            return StoreResult(updated, tuple(failed))

        return await self._write(op)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        wanted = None if uids is None else _json_ints(uids)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> list[int]:
            account_id = _mailbox_account(conn, mailbox_id)
            if wanted is None:
                rows = conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND flags & ? != 0 ORDER BY uid",
                    (mailbox_id, DELETED),
                )
            else:
                rows = conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND flags & ? != 0"
                    " AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                    (mailbox_id, DELETED, wanted),
                )
            gone = [r[0] for r in rows]
            if gone:
                _remove_messages(conn, ctx, account_id, mailbox_id, gone)
            return gone

        return await self._write(op)

    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        return await self._write(self._copy_op(mailbox_id, uids, dest_mailbox_id, move=False))

    async def move(self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int) -> CopyResult:
        return await self._write(self._copy_op(mailbox_id, uids, dest_mailbox_id, move=True))

    def _copy_op(
        self, mailbox_id: int, uids: Sequence[int], dest_mailbox_id: int, move: bool
    ) -> Callable[[sqlite3.Connection, OpContext], CopyResult]:
        wanted = _json_ints(uids)

        def op(conn: sqlite3.Connection, ctx: OpContext) -> CopyResult:
            account_id = _mailbox_account(conn, mailbox_id)
            dest_account_id = _mailbox_account(conn, dest_mailbox_id)
            rows = conn.execute(
                "SELECT uid, flags, keywords, internaldate, size, blob FROM messages"
                " WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (mailbox_id, wanted),
            ).fetchall()
            if not rows:
                uidvalidity = conn.execute(
                    "SELECT uidvalidity FROM mailboxes WHERE id = ?", (dest_mailbox_id,)
                ).fetchone()[0]
                return CopyResult(uidvalidity, (), ())
            # A move inside one account does not change its usage.
            if not move or dest_account_id != account_id:
                _check_quota(conn, dest_account_id, sum(r[4] for r in rows))
            _, uidvalidity, first_uid, modseq, _ = _allocate(conn, dest_mailbox_id, len(rows))
            dest_uids = tuple(range(first_uid, first_uid + len(rows)))
            conn.executemany(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate,"
                " size, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (dest_mailbox_id, new_uid, modseq, flags, keywords, date, size, blob)
                    for new_uid, (_, flags, keywords, date, size, blob) in zip(
                        dest_uids, rows, strict=True
                    )
                ],
            )
            source_uids = tuple(r[0] for r in rows)
            if move:
                _remove_messages(conn, ctx, account_id, mailbox_id, list(source_uids))
            ctx.announce(
                Change(dest_account_id, dest_mailbox_id, ChangeKind.MESSAGES_ADDED, modseq)
            )
            return CopyResult(uidvalidity, source_uids, dest_uids)

        return op

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        flagset = self._flagset

        def read(conn: sqlite3.Connection) -> Changes:
            row = conn.execute(
                "SELECT highestmodseq, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            changed = tuple(
                MessageFlags(uid, flagset(bits, kw), m)
                for uid, bits, kw, m in conn.execute(
                    "SELECT uid, flags, keywords, modseq FROM messages"
                    " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                    (mailbox_id, modseq),
                )
            )
            expunged = tuple(
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                    (mailbox_id, modseq),
                )
            )
            return Changes(row[0], row[1], changed, expunged)

        return await self._read(read)

    async def claim_recent(self, mailbox_id: int) -> list[int]:
        def peek(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT uidnext - 1 > recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            return bool(row[0])

        # Most SELECTs find nothing new: answer those without a write (and its fsync).
        if not await self._read(peek):
            return []

        def op(conn: sqlite3.Connection, ctx: OpContext) -> list[int]:
            row = conn.execute(
                "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no mailbox {mailbox_id}")
            recent = [
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND uid > ? ORDER BY uid",
                    (mailbox_id, row[0]),
                )
            ]
            conn.execute(
                "UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (row[1] - 1, mailbox_id)
            )
            return recent

        return await self._write(op)

    async def search(self, mailbox_id: int, query: Query) -> list[int]:
        """Messages stored moments ago are described first (describe.py) when the search
        reads their columns or texts; one stored while it runs is matched on its flags,
        dates and size only, much as one stored just after it is not matched at all."""
        compiled = compile_search(mailbox_id, query)

        def read(conn: sqlite3.Connection, describing: bool) -> list[int] | Described:
            _require_mailbox(conn, mailbox_id)
            described: Described = {}
            for blob, sha256 in (
                conn.execute(
                    "SELECT b.id, b.sha256 FROM fts_pending p JOIN blobs b ON b.id = p.blob"
                    " WHERE b.meta = ? AND EXISTS"
                    " (SELECT 1 FROM messages m WHERE m.blob = b.id AND m.mailbox_id = ?)",
                    (UNDESCRIBED, mailbox_id),
                ).fetchall()
                if describing
                else ()
            ):
                description = self._describe_blob(conn, blob, sha256)
                if description is not None:
                    described[blob] = (sha256, description)
            if described:
                return described
            return [r[0] for r in conn.execute(compiled.sql, compiled.params)]

        found = await self._read(lambda conn: read(conn, compiled.described))
        if isinstance(found, dict):
            await self._record(found)
            found = await self._read(lambda conn: read(conn, False))
        assert isinstance(found, list)
        return found

    async def read_blobs(self, blob_ids: Sequence[str]) -> list[bytes | None]:
        """One hop to a read thread for the whole batch: the inline messages in one query,
        the others from their files in the same thread."""
        valid = [b for b in blob_ids if blobfiles.valid_id(b)]
        files = self._blobs

        def read(conn: sqlite3.Connection) -> list[bytes | None]:
            found: dict[str, bytes] = dict(
                conn.execute(
                    "SELECT b.sha256, d.data FROM blobs b JOIN blob_data d ON d.blob = b.id"
                    " WHERE b.sha256 IN (SELECT value FROM json_each(?))",
                    (json.dumps(valid),),
                )
            )
            for blob_id in valid:
                if blob_id not in found:
                    try:
                        data = files.read(blob_id)
                    except FileNotFoundError:
                        continue
                    found[blob_id] = data
            return [found.get(b) for b in blob_ids]

        return await self._read(read)

    async def message_sizes(self, mailbox_id: int) -> list[tuple[int, int, str, frozenset[str]]]:
        flagset = self._flagset

        def read(conn: sqlite3.Connection) -> list[tuple[int, int, str, frozenset[str]]]:
            _require_mailbox(conn, mailbox_id)
            rows = conn.execute(
                "SELECT m.uid, m.size, b.sha256, m.flags, m.keywords FROM messages m"
                " JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ? ORDER BY m.uid",
                (mailbox_id,),
            )
            return [(uid, size, sha, flagset(bits, kw)) for uid, size, sha, bits, kw in rows]

        return await self._read(read)


# -- helpers running inside read or write transactions -----------------------------------


def _never() -> bool:
    return False


def _account(row: tuple[Any, ...] | None) -> Account | None:
    return None if row is None else Account(*row)


def _mailbox(row: tuple[Any, ...] | None) -> Mailbox | None:
    if row is None:
        return None
    return Mailbox(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


def _mailbox_by_id(conn: sqlite3.Connection, mailbox_id: int) -> Mailbox | None:
    return _mailbox(
        conn.execute(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes mb WHERE mb.id = ?", (mailbox_id,)
        ).fetchone()
    )


def _mailbox_id(conn: sqlite3.Connection, account_id: int, name: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, name)
    ).fetchone()
    return None if row is None else row[0]


def _mailbox_account(conn: sqlite3.Connection, mailbox_id: int) -> int:
    row = conn.execute("SELECT account_id FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return row[0]


def _require_mailbox(conn: sqlite3.Connection, mailbox_id: int) -> None:
    _mailbox_account(conn, mailbox_id)


def _require_account(conn: sqlite3.Connection, account_id: int) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise NotFound(f"no account {account_id}")


def _check_quota(conn: sqlite3.Connection, account_id: int, extra: int) -> None:
    quota, used = conn.execute(
        "SELECT quota, used_bytes FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if quota is not None and used + extra > quota:
        _over_quota(conn, account_id)


def _over_quota(conn: sqlite3.Connection, account_id: int) -> NoReturn:
    address, quota = conn.execute(
        "SELECT address, quota FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    raise OverQuota(f"{address} is over its quota of {quota} bytes")


def _next_uidvalidity(conn: sqlite3.Connection) -> int:
    """Time-based and strictly increasing across the whole store, so a name deleted and
    created again never gets a UIDVALIDITY it had before (RFC 9051 §2.3.1.1)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    value = max(int(time.time()), (row[0] if row else 0) + 1)
    if value > 0xFFFFFFFF:
        raise StoreError("UIDVALIDITY values exhausted")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('uidvalidity', ?)", (value,))
    return value


def _insert_mailbox(
    conn: sqlite3.Connection, account_id: int, name: str, special_use: str | None
) -> int:
    cur = conn.execute(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
        (account_id, name, _next_uidvalidity(conn), special_use),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _allocate(
    conn: sqlite3.Connection, mailbox_id: int, count: int
) -> tuple[int, int, int, int, int | None]:
    """Reserve ``count`` uids and one new modseq: (account, uidvalidity, first uid, modseq,
    bytes left in the account's quota or None when unlimited)."""
    row = conn.execute(
        "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1"
        " WHERE id = ? RETURNING account_id, uidvalidity, uidnext - ?, highestmodseq,"
        " (SELECT quota - used_bytes FROM accounts WHERE accounts.id = mailboxes.account_id)",
        (count, mailbox_id, count),
    ).fetchall()
    if not row:
        raise NotFound(f"no mailbox {mailbox_id}")
    return row[0]


def _bump_modseq(conn: sqlite3.Connection, mailbox_id: int) -> int:
    return conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
        " RETURNING highestmodseq",
        (mailbox_id,),
    ).fetchall()[0][0]


def _write_flags(
    conn: sqlite3.Connection,
    mailbox_id: int,
    modseq: int,
    changes: list[tuple[int, int, str | None]],
) -> None:
    """One UPDATE per distinct new (flags, keywords): a STORE usually gives every message the
    same result, and a set-based UPDATE costs a fraction of a statement per row."""
    groups: dict[tuple[int, str | None], list[int]] = {}
    for uid, new_bits, new_keywords in changes:
        groups.setdefault((new_bits, new_keywords), []).append(uid)
    single: list[tuple[int, str | None, int, int, int]] = []
    for (new_bits, new_keywords), uids in groups.items():
        if len(uids) == 1:
            single.append((new_bits, new_keywords, modseq, mailbox_id, uids[0]))
            continue
        conn.execute(
            "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
            " WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
            (new_bits, new_keywords, modseq, mailbox_id, json.dumps(uids)),
        )
    if single:
        conn.executemany(
            "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
            " WHERE mailbox_id = ? AND uid = ?",
            single,
        )


def _remove_messages(
    conn: sqlite3.Connection, ctx: OpContext, account_id: int, mailbox_id: int, uids: list[int]
) -> None:
    """Delete messages and leave tombstones for QRESYNC (RFC 7162 §3.2.10)."""
    modseq = _bump_modseq(conn, mailbox_id)
    wanted = json.dumps(uids)
    conn.execute(
        "DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
        (mailbox_id, wanted),
    )
    conn.execute(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
        " SELECT ?, value, ? FROM json_each(?)",
        (mailbox_id, modseq, wanted),
    )
    ctx.announce(Change(account_id, mailbox_id, ChangeKind.EXPUNGED, modseq))


def _rename_inbox(
    conn: sqlite3.Connection, ctx: OpContext, account_id: int, inbox_id: int, target: str
) -> None:
    """RFC 9051 §6.3.6: move INBOX's messages to a new mailbox, leave INBOX empty and its
    inferiors where they are."""
    new_id = _insert_mailbox(conn, account_id, target, None)
    rows = conn.execute(
        "SELECT uid, flags, keywords, internaldate, size, blob FROM messages"
        " WHERE mailbox_id = ? ORDER BY uid",
        (inbox_id,),
    ).fetchall()
    ctx.announce(Change(account_id, new_id, ChangeKind.MAILBOX_CREATED))
    if not rows:
        return
    _, _, first_uid, modseq, _ = _allocate(conn, new_id, len(rows))
    conn.executemany(
        "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate, size,"
        " blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (new_id, first_uid + i, modseq, flags, keywords, date, size, blob)
            for i, (_, flags, keywords, date, size, blob) in enumerate(rows)
        ],
    )
    _remove_messages(conn, ctx, account_id, inbox_id, [r[0] for r in rows])


# -- validation and conversions ---------------------------------------------------------


def _domain(name: str) -> str:
    domain = name.lower()
    if (
        not domain
        or len(domain) > 253
        or "@" in domain
        or domain.startswith(".")
        or not domain.isprintable()
        or any(c.isspace() for c in domain)
    ):
        raise Invalid(f"{name!r} is not a domain name")
    return domain


def _address(address: str) -> str:
    addr = address.lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or len(addr) > 320 or not addr.isprintable() or " " in addr:
        raise Invalid(f"{address!r} is not an address like user@example.org")
    _domain(domain)
    return addr


def _alias_source(source: str) -> str:
    if source.startswith("@"):
        return "@" + _domain(source[1:])
    return _address(source)


def _check_quota_value(quota: int | None) -> None:
    if quota is not None and (isinstance(quota, bool) or quota < 0):
        raise Invalid("a quota is a number of bytes >= 0, or None for unlimited")


def _scram_columns(secrets: ScramSecrets | None) -> tuple[Any, ...]:
    if secrets is None:
        return (None, None, None, None)
    return (secrets.salt, secrets.iterations, secrets.stored_key, secrets.server_key)


def _normal_name(name: str) -> str:
    """RFC 9051 §5.1: INBOX is case-insensitive; every other name is compared exactly."""
    return _INBOX if name.upper() == _INBOX else name


def _check_name(name: str) -> str:
    normal = _normal_name(name)
    parts = normal.split("/")
    if (
        not normal
        or len(normal.encode("utf-8", "surrogatepass")) > MAX_MAILBOX_NAME
        or len(parts) > MAX_MAILBOX_DEPTH
        or any(not part for part in parts)
        or not normal.isprintable()
        or "*" in normal
        or "%" in normal
    ):
        raise Invalid(f"bad mailbox name {name!r}")
    return normal


def _parse_flags(flags: Iterable[str]) -> tuple[int, dict[str, str]]:
    """System flags as bits; keywords by folded name -> first spelling.  \\Recent is session
    state and is ignored (RFC 3501 §2.3.2)."""
    bits = 0
    keywords: dict[str, str] = {}
    for flag in flags:
        folded = flag.lower()
        if flag.startswith("\\"):
            if folded == "\\recent":
                continue
            bit = _FLAG_BITS_FOLDED.get(folded)
            if bit is None:
                raise Invalid(f"unknown system flag {flag}")
            bits |= bit
            continue
        if (
            not flag
            or len(flag) > MAX_KEYWORD
            or not flag.isascii()
            or not flag.isprintable()
            or any(c in _KEYWORD_SPECIALS for c in flag)
        ):
            raise Invalid(f"bad keyword {flag!r}")
        keywords.setdefault(folded, flag)
    if len(keywords) > MAX_KEYWORDS:
        raise Invalid(f"a message has at most {MAX_KEYWORDS} keywords")
    return bits, keywords


def _keywords(keywords: dict[str, str]) -> str | None:
    return " ".join(sorted(keywords.values(), key=str.lower)) or None


def _apply_flags(
    mode: FlagMode, bits: int, stored: str | None, new_bits: int, new_keywords: dict[str, str]
) -> tuple[int, str | None]:
    current = {k.lower(): k for k in stored.split(" ")} if stored else {}
    if mode is FlagMode.ADD:
        merged = {**new_keywords, **current}  # an existing spelling wins
        result_bits = bits | new_bits
    elif mode is FlagMode.REMOVE:
        merged = {k: v for k, v in current.items() if k not in new_keywords}
        result_bits = bits & ~new_bits
    else:
        merged = new_keywords
        result_bits = new_bits
    if len(merged) > MAX_KEYWORDS:
        raise Invalid(f"a message has at most {MAX_KEYWORDS} keywords")
    return result_bits, _keywords(merged)


def _json_ints(values: Iterable[int]) -> str:
    return json.dumps([int(v) for v in values])


def _contains(haystack: str | None, needle: str) -> int:
    """SQL pr_contains: case-insensitive substring (``needle`` already lower-cased) where the
    trigram index cannot answer: needles under three characters, texts not indexed yet.
    Lower-casing is the simple case mapping the trigram tokenizer also applies."""
    return int(haystack is not None and needle in haystack.lower())
