"""Every node of the search query tree, compiled to SQL."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import pytest

from postroom.store import query as q
from postroom.store import sqlite
from postroom.store.base import FlagMode, NotFound
from postroom.store.search import compile_search
from postroom.store.sqlite import SqliteStore
from tests.store.conftest import message

DAY = date(2024, 3, 10)


def local_noon(day: date) -> float:
    return time.mktime((day.year, day.month, day.day, 12, 0, 0, 0, 0, -1))


@pytest.fixture(params=["pending", "indexed"])
async def store(request, tmp_path, monkeypatch, inline_max):
    """Searches must give the same answers before and after texts reach the trigram index,
    with messages in the database or in files."""
    if request.param == "pending":
        monkeypatch.setattr(sqlite, "index_step", lambda conn, write, describe: 0)
    s = SqliteStore(tmp_path / "data", inline_max=inline_max)
    await s.open()
    s.keep_pending = request.param == "pending"
    try:
        yield s
    finally:
        await s.close()


async def settle_index(store) -> None:
    """Wait until the writer has moved every text into the index, or check none was."""
    for _ in range(500):
        pending = await store._read(
            lambda conn: conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0]
        )
        if store.keep_pending or not pending:
            assert bool(pending) == store.keep_pending
            return
        await asyncio.sleep(0.01)
    raise AssertionError("texts never indexed")


@pytest.fixture
async def mailbox(store, inbox):
    """Five messages with distinct features; uid n is message n."""
    specs = [
        dict(
            subject="Quarterly report",
            body="Revenue grew by 12%.",
            date="Sat, 09 Mar 2024 23:30:00 -0800",
        ),
        dict(
            subject="Lunch?",
            body="Café at noon, ça va?",
            to="Zoë <zoe@example.net>",
            X_Mailer="Mutt 2.2",
            Received="from relay.hidden.example by mx.example.org",
        ),
        dict(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=", body="short", cc="team@example.org"),
        dict(subject="Re: Quarterly report", body="Thanks, looks good.", date="not a date"),
        dict(subject="Big one", body="x" * 5000),
    ]
    internal = [local_noon(date(2024, 3, d)) for d in (9, 10, 10, 11, 12)]
    for n, (spec, when) in enumerate(zip(specs, internal, strict=True), start=1):
        spec = dict(spec)
        extra = {k: v for k, v in spec.items() if k not in ("subject", "body")}
        if "date" in extra:
            extra["Date"] = extra.pop("date")
        data = message(n, subject=spec["subject"], body=spec["body"], **extra)
        await store.append(inbox.id, data, internaldate=when)
    await store.store_flags(inbox.id, [1, 2], FlagMode.ADD, ["\\Seen"])
    await store.store_flags(inbox.id, [2], FlagMode.ADD, ["\\Flagged", "$Important"])
    await store.store_flags(inbox.id, [4], FlagMode.ADD, ["\\Deleted"])
    await settle_index(store)
    return inbox


async def run(store, mailbox, node):
    return await store.search(mailbox.id, node)


async def test_all_and_or_not(store, mailbox):
    assert await run(store, mailbox, q.All()) == [1, 2, 3, 4, 5]
    assert await run(store, mailbox, q.And(())) == [1, 2, 3, 4, 5]
    assert await run(store, mailbox, q.Or(())) == []
    seen = q.HasFlag("\\Seen")
    assert await run(store, mailbox, seen) == [1, 2]
    assert await run(store, mailbox, q.Not(seen)) == [3, 4, 5]
    assert await run(store, mailbox, q.And((seen, q.HasFlag("\\Flagged")))) == [2]
    assert await run(store, mailbox, q.Or((q.HasFlag("\\Deleted"), q.HasFlag("\\Flagged")))) == [
        2,
        4,
    ]
    assert await run(store, mailbox, q.Not(q.Or((seen, q.HasFlag("\\Deleted"))))) == [3, 5]


async def test_flags_and_keywords(store, mailbox):
    assert await run(store, mailbox, q.HasFlag("\\seen")) == [1, 2]
    assert await run(store, mailbox, q.HasFlag("$important")) == [2]
    assert await run(store, mailbox, q.Not(q.HasFlag("$Important"))) == [1, 3, 4, 5]
    assert await run(store, mailbox, q.HasFlag("\\Draft")) == []
    assert await run(store, mailbox, q.HasFlag("\\Unknown")) == []


async def test_uid_ranges(store, mailbox):
    assert await run(store, mailbox, q.UidIn(((2, 3), (5, 9)))) == [2, 3, 5]
    assert await run(store, mailbox, q.UidIn(())) == []
    many = tuple((n, n) for n in range(1, 60, 2))  # beyond the inline limit
    assert await run(store, mailbox, q.UidIn(many)) == [1, 3, 5]
    assert await run(store, mailbox, q.Not(q.UidIn(many))) == [2, 4]


async def test_header_columns(store, mailbox):
    assert await run(store, mailbox, q.Header("subject", "QUARTERLY")) == [1, 4]
    assert await run(store, mailbox, q.Header("subject", "grüße")) == [3]  # decoded, folded
    assert await run(store, mailbox, q.Header("to", "zoë")) == [2]
    assert await run(store, mailbox, q.Header("cc", "")) == [3]  # has the field
    assert await run(store, mailbox, q.Not(q.Header("cc", ""))) == [1, 2, 4, 5]
    assert await run(store, mailbox, q.Header("from", "alice@")) == [1, 2, 3, 4, 5]
    assert await run(store, mailbox, q.Header("bcc", "x")) == []
    assert await run(store, mailbox, q.Header("message-id", "<3@")) == [3]


async def test_header_outside_columns(store, mailbox):
    assert await run(store, mailbox, q.Header("x-mailer", "mutt")) == [2]
    assert await run(store, mailbox, q.Header("x-mailer", "")) == [2]
    assert await run(store, mailbox, q.Not(q.Header("x-mailer", ""))) == [1, 3, 4, 5]


async def test_body_and_text(store, mailbox):
    assert await run(store, mailbox, q.Body("REVENUE")) == [1]
    assert await run(store, mailbox, q.Body("café")) == [2]
    assert await run(store, mailbox, q.Body("quarterly")) == []  # only in a header
    assert await run(store, mailbox, q.Text("quarterly")) == [1, 4]
    assert await run(store, mailbox, q.Text("zoe@example")) == [2]
    assert await run(store, mailbox, q.Text("MUTT 2")) == [2]  # any header field...
    assert await run(store, mailbox, q.Text("relay.hidden")) == []  # ...but trace fields
    assert await run(store, mailbox, q.Body("ça")) == [2]  # two characters: no trigram
    assert await run(store, mailbox, q.Body("")) == [1, 2, 3, 4, 5]
    assert await run(store, mailbox, q.Body('say "hi"')) == []
    assert await run(store, mailbox, q.Not(q.Body("revenue"))) == [2, 3, 4, 5]


async def test_size(store, mailbox):
    assert await run(store, mailbox, q.Size(">", 4000)) == [5]
    assert await run(store, mailbox, q.Size("<", 4000)) == [1, 2, 3, 4]


async def test_internal_date(store, mailbox):
    assert await run(store, mailbox, q.InternalDate("=", DAY)) == [2, 3]
    assert await run(store, mailbox, q.InternalDate("<", DAY)) == [1]
    assert await run(store, mailbox, q.InternalDate(">=", DAY)) == [2, 3, 4, 5]


async def test_sent_date(store, mailbox):
    """The Date: header's own day, disregarding its zone (uid 1 is 9 March in -0800 even
    though that is 10 March in UTC); without a usable Date: the internal date (uid 4)."""
    assert await run(store, mailbox, q.SentDate("=", date(2024, 3, 9))) == [1]
    assert await run(store, mailbox, q.SentDate("=", date(2024, 1, 1))) == [2, 3, 5]
    assert await run(store, mailbox, q.SentDate(">=", date(2024, 3, 10))) == [4]
    assert await run(store, mailbox, q.SentDate("<", date(2024, 3, 1))) == [2, 3, 5]


async def test_modseq(store, mailbox):
    flags = {m.uid: m.modseq for m in await store.message_flags(mailbox.id)}
    assert await run(store, mailbox, q.ModSeq(flags[4])) == [4]
    assert await run(store, mailbox, q.ModSeq(0)) == [1, 2, 3, 4, 5]


async def test_missing_mailbox(store):
    with pytest.raises(NotFound):
        await store.search(9999, q.All())


async def test_unseen_reads_only_unseen_messages(store, mailbox):
    """SEARCH UNSEEN walks the partial index of unseen messages, not the whole mailbox."""
    compiled = compile_search(mailbox.id, q.Not(q.HasFlag("\\Seen")))
    plan = await store._read(
        lambda conn: " | ".join(
            row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.params)
        )
    )
    assert "messages_unseen" in plan
    assert "uid=?" in plan  # the outer lookup is by uid, one per unseen message


async def test_trigram_candidates_are_confirmed(store, inbox):
    """A text holding every trigram of the needle, but not the needle, does not match."""
    await store.append(inbox.id, message(1, body="abc and bcd apart"))
    await store.append(inbox.id, message(2, body="ABCD together"))
    await settle_index(store)
    assert await store.search(inbox.id, q.Body("abcd")) == [2]
    long_needle = "the quick brown fox jumps over the lazy dog " * 3
    await store.append(inbox.id, message(3, body="x" + long_needle.upper() + "y"))
    await settle_index(store)
    assert await store.search(inbox.id, q.Body(long_needle)) == [3]
    assert await store.search(inbox.id, q.Body(long_needle + "!")) == []
