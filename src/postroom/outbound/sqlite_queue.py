"""The outbound queue in its own SQLite database (``data_dir/queue.sqlite``).

WAL with ``synchronous=FULL``: a commit is on disk when it returns, message bytes included (they
live in the same database, so one fsync covers both).  Every operation runs on one thread that
owns the connection; operations that arrive while a commit is in progress are batched into the
next transaction (group commit), so many concurrent SMTP transactions share one fsync.

One delivery worker per data folder (the server's); administration commands in other processes
use the same file safely (SQLite locking, busy timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue as thread_queue
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from postroom.outbound.queue import (
    CachedPolicy,
    Notified,
    OutboundRecipient,
    Queue,
    QueuedMessage,
    RcptState,
    RecipientRecord,
    RecipientResult,
)

T = TypeVar("T")

SCHEMA_VERSION = 1
MAX_BATCH = 256  # operations per group commit

SCHEMA = """
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    envid TEXT,
    ret TEXT,
    requiretls INTEGER NOT NULL,
    arrival REAL NOT NULL,
    size INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_attempt REAL,
    locked_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX messages_due ON messages (next_attempt);
CREATE TABLE bodies (
    id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE recipients (
    id INTEGER PRIMARY KEY,
    message TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    notify TEXT,
    orcpt_type TEXT,
    orcpt TEXT,
    state TEXT NOT NULL,
    status TEXT,
    diagnostic TEXT,
    remote_mta TEXT,
    updated REAL,
    delay_notified INTEGER NOT NULL DEFAULT 0,
    final_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recipients_message ON recipients (message);
CREATE TABLE mtasts (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    fetched REAL NOT NULL,
    expires REAL NOT NULL
);
"""


class QueueError(Exception):
    """The queue database is unusable (newer schema, closed)."""


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop):
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the operation happened anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteQueue(Queue):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._jobs: thread_queue.SimpleQueue[_Job | None] = thread_queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None

    # -- the connection thread -------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="queue-db", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._opened.wait)
        if self._open_error is not None:
            self._thread.join()
            self._thread = None
            raise self._open_error

    async def close(self) -> None:
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _connect(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        if fresh:  # the database holds message bytes: owner and group only
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o640))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise QueueError(
                f"{self.path}: queue schema {version} is newer than this postroom ({SCHEMA_VERSION})"
            )
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported by open()
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except thread_queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._execute(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _execute(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = job.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((job, None, exc))
                else:
                    outcomes.append((job, result, None))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit failed: nothing of the batch is durable
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [(job, None, exc) for job in batch]
        for job, result, error in outcomes:
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            raise QueueError("the queue is not open")
        job = _Job(fn, asyncio.get_running_loop())
        self._jobs.put(job)
        return await job.future

    # -- operations --------------------------------------------------------------------------

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[OutboundRecipient],
        data: bytes,
        *,
        envid: str | None = None,
        ret: str | None = None,
        requiretls: bool = False,
        arrival: float,
        notified: Sequence[Notified] = (),
    ) -> str:
        if not recipients:
            raise ValueError("a queued message needs at least one recipient")
        message_id = secrets.token_hex(8)
        rows = [
            (
                message_id,
                r.address,
                None if r.notify is None else ",".join(sorted(r.notify)),
                r.orcpt[0] if r.orcpt else None,
                r.orcpt[1] if r.orcpt else None,
                RcptState.PENDING.value,
            )
            for r in recipients
        ]

        def op(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO messages (id, sender, envid, ret, requiretls, arrival, size,"
                " next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, sender, envid, ret, int(requiretls), arrival, len(data), arrival),
            )
            conn.execute("INSERT INTO bodies (id, data) VALUES (?, ?)", (message_id, data))
            conn.executemany(
                "INSERT INTO recipients (message, address, notify, orcpt_type, orcpt, state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            _mark(conn, notified)
            return message_id

        return await self._call(op)

    async def claim(self, now: float, limit: int, lease: float) -> list[QueuedMessage]:
        def op(conn: sqlite3.Connection) -> list[QueuedMessage]:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM messages WHERE next_attempt <= ? AND locked_until <= ?"
                    " ORDER BY next_attempt LIMIT ?",
                    (now, now, limit),
                )
            ]
            conn.executemany(
                "UPDATE messages SET locked_until = ? WHERE id = ?", [(now + lease, i) for i in ids]
            )
            return [m for m in (_load(conn, i) for i in ids) if m is not None]

        return await self._call(op)

    async def read_data(self, message_id: str) -> bytes:
        def op(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT data FROM bodies WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise KeyError(message_id)
            return bytes(row[0])

        return await self._call(op)

    async def record(self, message_id: str, results: Sequence[RecipientResult], now: float) -> None:
        rows = [
            (
                r.state.value,
                r.status,
                r.diagnostic,
                r.remote_mta,
                now,
                int(r.notified),
                r.recipient_id,
                message_id,
            )
            for r in results
        ]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE recipients SET state = ?, status = ?, diagnostic = ?, remote_mta = ?,"
                " updated = ?, final_notified = final_notified OR ?"
                " WHERE id = ? AND message = ? AND state IN ('pending', 'deferred')",
                rows,
            )

        await self._call(op)

    async def release(
        self, message_id: str, next_attempt: float, attempted_at: float | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET locked_until = 0, next_attempt = ?,"
                " attempts = attempts + ?, last_attempt = coalesce(?, last_attempt)"
                " WHERE id = ?",
                (next_attempt, int(attempted_at is not None), attempted_at, message_id),
            )

        await self._call(op)

    async def mark_notified(self, marks: Sequence[Notified]) -> None:
        await self._call(lambda conn: _mark(conn, marks))

    async def remove(self, message_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount > 0

        return await self._call(op)

    async def get(self, message_id: str) -> QueuedMessage | None:
        return await self._call(lambda conn: _load(conn, message_id))

    async def list(self) -> list[QueuedMessage]:
        def op(conn: sqlite3.Connection) -> list[QueuedMessage]:
            ids = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY arrival, id")]
            return [m for m in (_load(conn, i) for i in ids) if m is not None]

        return await self._call(op)

    async def next_due(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(max(next_attempt, locked_until)) FROM messages"
            ).fetchone()
            return row[0]

        return await self._call(op)

    async def retry(self, message_id: str | None, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if message_id is None:
                return conn.execute("UPDATE messages SET next_attempt = ?", (now,)).rowcount
            return conn.execute(
                "UPDATE messages SET next_attempt = ? WHERE id = ?", (now, message_id)
            ).rowcount

        return await self._call(op)

    async def fail_active(self, message_id: str, status: str, diagnostic: str, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            changed = conn.execute(
                "UPDATE recipients SET state = 'failed', status = ?, diagnostic = ?,"
                " remote_mta = NULL, updated = ?"
                " WHERE message = ? AND state IN ('pending', 'deferred')",
                (status, diagnostic, now, message_id),
            ).rowcount
            conn.execute("UPDATE messages SET next_attempt = ? WHERE id = ?", (now, message_id))
            return changed

        return await self._call(op)

    async def recover(self) -> None:
        await self._call(
            lambda conn: conn.execute("UPDATE messages SET locked_until = 0 WHERE locked_until > 0")
        )

    async def get_policy(self, domain: str) -> CachedPolicy | None:
        def op(conn: sqlite3.Connection) -> CachedPolicy | None:
            row = conn.execute(
                "SELECT domain, policy_id, policy, fetched, expires FROM mtasts WHERE domain = ?",
                (domain,),
            ).fetchone()
            return CachedPolicy(*row) if row else None

        return await self._call(op)

    async def put_policy(self, policy: CachedPolicy) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO mtasts (domain, policy_id, policy, fetched, expires)"
                " VALUES (?, ?, ?, ?, ?)",
                (policy.domain, policy.policy_id, policy.text, policy.fetched, policy.expires),
            )

        await self._call(op)


def _mark(conn: sqlite3.Connection, marks: Sequence[Notified]) -> None:
    for mark in marks:
        column = "delay_notified" if mark.kind == "delay" else "final_notified"
        conn.execute(f"UPDATE recipients SET {column} = 1 WHERE id = ?", (mark.recipient_id,))


def _load(conn: sqlite3.Connection, message_id: str) -> QueuedMessage | None:
    row = conn.execute(
        "SELECT id, sender, envid, ret, requiretls, arrival, size, attempts, next_attempt,"
        " last_attempt FROM messages WHERE id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    recipients = tuple(
        RecipientRecord(
            id=r[0],
            address=r[1],
            notify=None if r[2] is None else frozenset(filter(None, r[2].split(","))),
            orcpt=(r[3], r[4]) if r[3] is not None else None,
            state=RcptState(r[5]),
            status=r[6],
            diagnostic=r[7],
            remote_mta=r[8],
            updated=r[9],
            delay_notified=bool(r[10]),
            final_notified=bool(r[11]),
        )
        for r in conn.execute(
            "SELECT id, address, notify, orcpt_type, orcpt, state, status, diagnostic,"
            " remote_mta, updated, delay_notified, final_notified FROM recipients"
            " WHERE message = ? ORDER BY id",
            (message_id,),
        )
    )
    return QueuedMessage(
        id=row[0],
        sender=row[1],
        envid=row[2],
        ret=row[3],
        requiretls=bool(row[4]),
        arrival=row[5],
        size=row[6],
        attempts=row[7],
        next_attempt=row[8],
        last_attempt=row[9],
        recipients=recipients,
    )
