"""A message is stored undescribed and parsed once after: by the first FETCH or SEARCH that
needs it, or by the background step, whichever comes first."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from postroom import mime
from postroom.config import Limits
from postroom.mime import ParsedMessage
from postroom.store import query as q
from postroom.store import sqlite, textindex
from postroom.store.base import FlagMode
from postroom.store.describe import UNDESCRIBED, describe, record
from postroom.store.sqlite import INLINE_MAX, SqliteStore
from tests.store.conftest import message


@pytest.fixture
def inline_max() -> int:
    """Messages kept in the database: those are parsed after their commit."""
    return INLINE_MAX


@pytest.fixture
def parses(monkeypatch) -> list[int]:
    """Holds the background step off, and counts the parses the store makes."""
    monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    made: list[int] = []

    def counted(data: bytes, inline: bool, limits: Limits):
        made.append(len(data))
        return describe(data, inline, limits)

    monkeypatch.setattr(sqlite, "describe", counted)
    return made


async def rows(store) -> list[tuple[bytes, str | None, int]]:
    """(meta, subject column, texts rows) of every blob."""
    return await store._read(
        lambda conn: conn.execute(
            "SELECT meta, subject, (SELECT count(*) FROM texts t WHERE t.blob = b.id)"
            " FROM blobs b ORDER BY id"
        ).fetchall()
    )


async def test_a_message_is_acknowledged_before_it_is_parsed(store, inbox, parses):
    await store.append(inbox.id, message(1, subject="Later"))
    assert parses == []
    assert await rows(store) == [(UNDESCRIBED, None, 0)]


async def test_the_first_fetch_parses_and_keeps_the_description(store, inbox, parses):
    data = message(1, subject="Fetched first")
    await store.append(inbox.id, data)
    await store.append(inbox.id, data)  # the same bytes: one blob, parsed once
    (first, second) = await store.fetch(inbox.id, [1, 2])
    expected = mime.parse(data)
    for fetched in (first, second):
        parsed = ParsedMessage.from_bytes(fetched.meta)
        assert parsed.envelope == expected.envelope
        assert parsed.bodystructure == expected.bodystructure
    assert parses == [len(data)]
    ((meta, subject, texts),) = await rows(store)
    assert meta == first.meta and subject == "fetched first" and texts == 1
    assert (await store.fetch(inbox.id, [1]))[0].meta == first.meta
    assert parses == [len(data)]  # kept: never parsed again


async def test_search_parses_what_it_would_miss(store, inbox, parses):
    await store.append(inbox.id, message(1, subject="Invoice", body="pay now"))
    await store.append(inbox.id, message(2, subject="Lunch", body="noon at the cafe"))
    assert await store.search(inbox.id, q.Header("subject", "invoice")) == [1]
    assert len(parses) == 2
    assert await store.search(inbox.id, q.Body("CAFE")) == [2]
    assert await store.search(inbox.id, q.Header("from", "alice")) == [1, 2]
    assert len(parses) == 2
    assert [texts for _, _, texts in await rows(store)] == [1, 1]


async def test_the_background_step_parses_and_indexes(store, inbox, parses):
    await store.append(inbox.id, message(1, subject="Background", body="quietly indexed"))
    with contextlib.closing(store._connect()) as conn:
        assert textindex.index_step(conn, contextlib.nullcontext(), store._describe_blob) == 0
        words = conn.execute("SELECT words FROM text_words").fetchone()[0]
    assert "quietly" in words.split()
    assert len(parses) == 1
    ((meta, subject, texts),) = await rows(store)
    assert meta != UNDESCRIBED and subject == "background" and texts == 1
    await store.fetch(inbox.id, [1])
    assert await store.search(inbox.id, q.Body("quietly")) == [1]
    assert len(parses) == 1


async def test_a_description_is_kept_once(store, inbox):
    data = message(1)
    await store.append(inbox.id, data)
    description = describe(data, True, Limits())

    def op(conn, ctx):
        blob, sha256 = conn.execute("SELECT id, sha256 FROM blobs").fetchone()
        return record(conn, blob, sha256, description), record(conn, blob, sha256, description)

    assert await store._write(op) == (True, False)
    with contextlib.closing(store._connect()) as conn:
        assert conn.execute("SELECT count(*) FROM texts").fetchone()[0] == 1


async def test_a_message_that_goes_before_its_parse_is_never_parsed(store, inbox, parses):
    await store.append(inbox.id, message(1))
    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    with contextlib.closing(store._connect()) as conn:
        assert textindex.index_step(conn, contextlib.nullcontext(), store._describe_blob) == 0
    assert parses == [] and await rows(store) == []


async def test_a_fetch_answers_even_when_keeping_the_parse_fails(store, inbox, parses, monkeypatch):
    data = message(1, subject="Kept or not")
    await store.append(inbox.id, data)

    def failing(conn, blob, sha256, description):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite, "record", failing)
    (fetched,) = await store.fetch(inbox.id, [1])
    assert ParsedMessage.from_bytes(fetched.meta).envelope == mime.parse(data).envelope
    assert (await rows(store))[0][0] == UNDESCRIBED  # the background step parses it later


async def test_what_needs_no_parse_parses_nothing(store, inbox, parses):
    """Flags, sizes and dates come from the message rows: reading them parses nothing."""
    await store.append(inbox.id, message(1))
    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
    assert await store.search(inbox.id, q.HasFlag("\\Deleted")) == [1]
    assert await store.search(inbox.id, q.Size(">", 10)) == [1]
    (fetched,) = await store.fetch(inbox.id, [1], meta=False)
    assert fetched.size == len(message(1))
    assert parses == []
    assert await store.search(inbox.id, q.And((q.HasFlag("\\Deleted"), q.Body("body")))) == [1]
    assert len(parses) == 1


async def test_a_message_kept_in_a_file_is_parsed_before_its_commit(tmp_path, parses):
    """Large messages are parsed where their file is written, not by the background step."""
    store = SqliteStore(tmp_path / "d", inline_max=0)
    await store.open()
    try:
        await store.add_domain("example.org")
        account = await store.create_account("bob@example.org", "h", None)
        inbox = await store.inbox_id(account.id)
        data = message(1, subject="In a file")
        await store.append(inbox, data)
        assert parses == [len(data)]
        ((meta, subject, texts),) = await rows(store)
        assert meta != UNDESCRIBED and subject == "in a file" and texts == 1
        (fetched,) = await store.fetch(inbox, [1])
        assert ParsedMessage.from_bytes(fetched.meta).envelope == mime.parse(data).envelope
        assert await store.search(inbox, q.Header("subject", "file")) == [1]
        assert parses == [len(data)]
    finally:
        await store.close()
