"""The UPDATE state (RFC 1939 §6), \\Seen for IMAP, the maildrop lock, and what other sessions
see of POP3 deletions."""

from __future__ import annotations

import asyncio
import imaplib
import importlib.util
import poplib
import time

import pytest

from postroom.store.notifier import ChangeKind
from tests.helpers import PASSWORD
from tests.pop3.conftest import Drop


def fill(drop: Drop, count: int) -> list[int]:
    return [drop.put(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)) for i in range(count)]


def test_drop_without_quit_deletes_nothing(drop: Drop):
    uids = fill(drop, 3)
    pop = drop.login()
    pop.dele(1)
    pop.dele(3)
    pop.close()  # connection dropped, no QUIT
    login_when_unlocked(drop).quit()
    assert drop.uids() == uids


def test_autologout_deletes_nothing_and_says_nothing(server_factory):
    # RFC 1939 §3: when the inactivity timer expires the server closes the connection
    # without a response and without entering the UPDATE state.
    drop = Drop(server_factory(auth={"allow_plaintext": True}, limits={"pop3_timeout": 1.0}))
    uids = fill(drop, 2)
    raw = drop.raw()
    assert raw.command(f"USER {drop.address}".encode()).startswith(b"+OK")
    assert raw.command(f"PASS {PASSWORD}".encode()).startswith(b"+OK")
    assert raw.command(b"DELE 1").startswith(b"+OK")
    assert raw.line() == b""  # closed by the server, nothing sent
    raw.close()
    login_when_unlocked(drop).quit()
    assert drop.uids() == uids


def test_quit_deletes_exactly_the_marked_messages(drop: Drop):
    uids = fill(drop, 4)
    pop = drop.login()
    pop.dele(2)
    pop.dele(4)
    assert b"2 messages deleted" in pop.quit()
    assert drop.uids() == [uids[0], uids[2]]


def test_rset_then_quit_deletes_nothing(drop: Drop):
    uids = fill(drop, 2)
    pop = drop.login()
    pop.dele(1)
    pop.rset()
    pop.quit()
    assert drop.uids() == uids


def test_retr_marks_seen_top_does_not(drop: Drop):
    uids = fill(drop, 3)
    pop = drop.login()
    pop.retr(1)
    pop.top(2, 0)
    pop.quit()
    flags = drop.flags()
    assert "\\Seen" in flags[uids[0]]
    assert "\\Seen" not in flags[uids[1]] and "\\Seen" not in flags[uids[2]]


def test_seen_kept_when_connection_drops(drop: Drop):
    uids = fill(drop, 2)
    pop = drop.login()
    pop.retr(2)
    pop.close()
    login_when_unlocked(drop).quit()  # the first session has ended
    assert "\\Seen" in drop.flags()[uids[1]]


def login_when_unlocked(drop: Drop) -> poplib.POP3:
    """Log in once the server has noticed an earlier session's disconnect."""
    deadline = time.monotonic() + 15
    while True:
        pop = drop.client()
        pop.user(drop.address)
        try:
            pop.pass_(PASSWORD)
            return pop
        except poplib.error_proto as exc:
            pop.close()
            if b"[IN-USE]" not in exc.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_second_session_gets_in_use(drop: Drop):
    fill(drop, 1)
    first = drop.login()
    second = drop.client()
    second.user(drop.address)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    first.dele(1)
    first.quit()
    second.user(drop.address)
    assert second.pass_(PASSWORD).startswith(b"+OK maildrop has 0")
    second.quit()


def test_lock_is_per_account(drop: Drop):
    other = Drop(drop.srv, "sam@example.test")
    first = drop.login()
    second = other.login()
    assert first.stat() == second.stat() == (0, 0)
    first.quit()
    second.quit()


def test_deletions_announced_as_expunges(drop: Drop):
    uids = fill(drop, 3)
    store = drop.srv.store

    async def subscribe():
        return store.notifier.subscribe(drop.account.id)

    sub = drop.srv.call(subscribe())
    try:
        pop = drop.login()
        pop.dele(2)
        pop.quit()

        async def expunged():
            while True:
                change = await asyncio.wait_for(sub.get(), 10)
                if change.kind is ChangeKind.EXPUNGED and change.mailbox_id == drop.inbox:
                    return change

        assert drop.srv.call(expunged()).mailbox_id == drop.inbox
        assert drop.uids() == [uids[0], uids[2]]
    finally:
        drop.srv.loop.call_soon_threadsafe(sub.close)


@pytest.mark.skipif(
    importlib.util.find_spec("postroom.imap.session") is None, reason="no IMAP server yet"
)
def test_imap_session_sees_pop3_deletions_and_seen(drop: Drop):
    fill(drop, 3)
    imap = imaplib.IMAP4("127.0.0.1", drop.srv.port("imap"), timeout=15)
    imap.login(drop.address, PASSWORD)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    pop = drop.login()
    pop.retr(1)
    pop.dele(2)
    pop.quit()
    deadline = time.monotonic() + 10  # the IMAP session may learn of it a moment later
    while "EXPUNGE" not in imap.untagged_responses and time.monotonic() < deadline:
        imap.noop()
        time.sleep(0.05)
    assert imap.untagged_responses.get("EXPUNGE") == [b"2"]
    typ, data = imap.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    imap.logout()


def test_many_retrieved_messages_all_marked_seen(drop: Drop):
    # more than one batch of \Seen marks (seen.BATCH), read ahead of a pipelining client
    uids = fill(drop, 300)
    raw = drop.raw()
    raw.send(f"USER {drop.address}\r\nPASS {PASSWORD}\r\n".encode())
    assert raw.line().startswith(b"+OK") and raw.line().startswith(b"+OK")
    order = [*range(1, 151), *range(300, 150, -1)]  # in order (read ahead), then backwards
    raw.send(b"".join(b"RETR %d\r\n" % n for n in order) + b"QUIT\r\n")
    for n in order:
        assert raw.line().startswith(b"+OK")
        assert raw.multiline()[0] == b"Subject: m%d" % (n - 1)
    assert raw.line().startswith(b"+OK")
    raw.close()
    flags = drop.flags()
    assert all("\\Seen" in flags[uid] for uid in uids)
