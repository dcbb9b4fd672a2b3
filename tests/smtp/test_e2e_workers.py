"""End to end with SMTP served by worker processes (``smtp_workers``): deliveries committed
by the workers themselves, IMAP IDLE in the server process told of them, SASL and its
throttling counted in one place, quota and remote recipients answered as in one process,
reload, and a worker that dies (even while committing) replaced without losing or halving an
acknowledged message; directory changes the server makes reach the workers at once."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import os
import signal
import smtplib
import threading
import time

import pytest

from postroom.smtp import steering
from tests.helpers import PASSWORD, ServerThread, client_tls_context
from tests.outbound.dnsserver import free_port
from tests.smtp.conftest import ALICE, BOB
from tests.smtp.e2e import RawClient, inbox

WORKERS = 2


@pytest.fixture
def smtp_workers() -> int:
    return WORKERS


@pytest.fixture
def srv(server_factory) -> ServerThread:
    server = server_factory(auth={"lockout_failures": 4, "failures_before_delay": 100})
    server.add_user(ALICE)
    server.add_user(BOB, quota=10_000)
    return server


def worker_pids(server: ServerThread) -> list[int]:
    pool = server.server.smtp_workers
    assert pool is not None
    return [w.proc.pid for w in pool.workers if w.proc is not None and w.proc.poll() is None]


def kill_and_await_replacement(server: ServerThread, victim: int) -> bool:
    """Kill a worker; True once another has taken its place (within 30 s)."""
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        if len(pids) == WORKERS and victim not in pids:
            return True
        time.sleep(0.05)
    return False


def send(server: ServerThread, rcpt: str, body: bytes, sender: str = "carol@remote.example"):
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=15) as client:
        return client.sendmail(sender, [rcpt], body)


def test_workers_accept_and_commit(srv):
    assert len(worker_pids(srv)) == WORKERS
    listener = srv.server.listeners["smtp"]
    assert not any(s.is_serving() for s in listener.servers)  # only the workers accept
    bodies = [f"Subject: w{i}\r\n\r\nbody {i}\r\n".encode() for i in range(20)]
    for body in bodies:
        send(srv, ALICE, body)
    stored = inbox(srv, ALICE)
    assert len(stored) == 20
    for body, message in zip(bodies, stored, strict=True):
        assert message.endswith(body)
        assert message.startswith(b"Return-Path: <carol@remote.example>\r\n")
        assert b"Delivered-To: alice@example.test\r\n" in message


def serving_worker(server: ServerThread) -> str:
    """Deliver one message on a new connection; the serving worker's session prefix (the
    reply's queue id starts with it)."""
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=15) as client:
        client.ehlo("client.example")
        client.mail("carol@remote.example")
        client.rcpt(ALICE)
        code, text = client.data(b"Subject: which worker\r\n\r\nx\r\n")
        assert code == 250
        return text.split()[-1][:6].decode()


def hold_busy(server: ServerThread) -> list[RawClient]:
    """BUSY open sessions: all on the first worker, which then spreads new connections."""
    held = []
    for _ in range(steering.BUSY):
        raw = RawClient(server.port("smtp"))
        assert raw.command(b"EHLO client.example").startswith("250")
        held.append(raw)
    return held


def test_a_lone_client_stays_on_the_first_worker_and_load_spreads(srv):
    """One socket per worker in an SO_REUSEPORT group.  A client's connections one after
    another all go to the first worker; while it holds BUSY sessions, new connections reach
    both workers; once they end, everything goes to the first worker again (steering.py)."""
    copies = srv.server.listeners["smtp"].filenos()
    assert len(copies) == WORKERS and len({fd for copy in copies for fd in copy}) == WORKERS
    [first] = {serving_worker(srv) for _ in range(10)}
    held = hold_busy(srv)
    assert len({serving_worker(srv) for _ in range(30)}) == WORKERS
    for raw in held:
        raw.close()
    deadline = time.monotonic() + 10
    while {serving_worker(srv) for _ in range(5)} != {first}:  # until the held ones ended
        assert time.monotonic() < deadline


def test_the_second_worker_takes_every_connection_while_the_first_is_replaced(srv):
    """The replacement starts a second later (RESTART_DELAY); meanwhile no connection waits
    in the dead worker's queue: all are served by the worker that was already running."""
    first = serving_worker(srv)
    held = hold_busy(srv)
    deadline = time.monotonic() + 10
    while (second := serving_worker(srv)) == first:
        assert time.monotonic() < deadline
    for raw in held:
        raw.close()
    os.kill(worker_pids(srv)[0], signal.SIGKILL)
    time.sleep(0.5)  # the server hears of the death at once; the replacement is 1 s away
    assert {serving_worker(srv) for _ in range(8)} == {second}


def test_large_message_kept_in_a_file(srv):
    body = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 4 + b"\r\n" * 10_000  # 660 KB
    send(srv, ALICE, body)
    [stored] = inbox(srv, ALICE)
    assert stored.endswith(body)


def test_idle_hears_a_delivery_made_through_a_worker(srv):
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=15)
    try:
        imap.starttls(ssl_context=client_tls_context())
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        tag = imap._new_tag()  # noqa: SLF001 - imaplib has no IDLE
        imap.send(tag + b" IDLE\r\n")
        assert imap.readline().startswith(b"+ ")
        send(srv, ALICE, b"Subject: idle\r\n\r\nx\r\n")
        assert imap.readline() == b"* 1 EXISTS\r\n"
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(tag):
            pass
    finally:
        imap.logout()


def test_quota_refusal_crosses_the_process_boundary(srv):
    raw = RawClient(srv.port("smtp"))
    raw.command(b"EHLO client.example")
    assert raw.command(b"MAIL FROM:<carol@remote.example>") == "250 2.1.0"
    assert raw.command(b"RCPT TO:<bob@example.test>") == "250 2.1.5"
    assert raw.command(b"DATA").startswith("354")
    raw.send(b"Subject: too big for bob\r\n\r\n" + b"x" * 20_000 + b"\r\n.\r\n")
    assert raw.codes(1) == ["452 4.2.2"]
    raw.close()
    assert inbox(srv, BOB) == []


def rcpt_answers(server: ServerThread, rcpt: str, connections: int = 8) -> set[str]:
    """RCPT answers over several connections, so that every worker is asked."""
    answers = set()
    for _ in range(connections):
        raw = RawClient(server.port("smtp"))
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@remote.example>")
        answers.add(raw.command(b"RCPT TO:<" + rcpt.encode() + b">"))
        raw.close()
    return answers


def test_workers_see_accounts_and_aliases_the_server_changes(srv):
    """The workers cache what they looked up (store/directory.py); a change the server
    process makes is seen by both of them at once."""
    assert rcpt_answers(srv, "newcomer@example.test") == {"550 5.1.1"}
    srv.add_user("newcomer@example.test")
    assert rcpt_answers(srv, "newcomer@example.test") == {"250 2.1.5"}
    srv.call(srv.store.add_alias("team@example.test", [ALICE]))
    assert rcpt_answers(srv, "team@example.test") == {"250 2.1.5"}
    srv.call(srv.store.remove_alias("team@example.test"))
    srv.call(srv.store.remove_account("newcomer@example.test"))
    assert rcpt_answers(srv, "team@example.test") == {"550 5.1.1"}
    assert rcpt_answers(srv, "newcomer@example.test") == {"550 5.1.1"}


def test_submission_auth_and_remote_recipient_go_through_the_server(server_factory):
    # elsewhere.example is routed to a port nobody listens on: the message stays queued.
    srv = server_factory(relay={"routes": {"elsewhere.example": f"127.0.0.1:{free_port()}"}})
    srv.add_user(ALICE)
    srv.add_user(BOB)
    with smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, ["dave@elsewhere.example", BOB], b"Subject: out\r\n\r\nx\r\n")
    assert b"with ESMTPSA id" in inbox(srv, BOB)[0]
    queue = srv.server.app.outbound.queue
    [queued] = srv.call(queue.list())
    assert [r.address for r in queued.recipients] == ["dave@elsewhere.example"]


def test_failed_logins_are_counted_across_workers(srv):
    """Each attempt on a new connection, which either worker may accept: the lockout after
    four failures holds for the fifth, whichever process serves it."""
    wrong = b"AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0wrong".encode())
    right = b"AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    answers = []
    for line in [wrong] * 4 + [right]:
        raw = RawClient(srv.port("submissions"), tls=True)
        raw.command(b"EHLO laptop.example")
        answers.append(raw.command(line))
        raw.close()
    assert answers == ["535 5.7.8"] * 4 + ["454 4.7.0"]


def test_reload_reaches_the_workers(srv):
    srv.server.settings.limits.recipients = 1
    srv.loop.call_soon_threadsafe(srv.server.reload)
    deadline = time.monotonic() + 10
    while True:  # the workers apply it as soon as the server's message reaches them
        raw = RawClient(srv.port("smtp"))
        raw.command(b"EHLO client.example")
        raw.command(b"MAIL FROM:<carol@remote.example>")
        raw.command(b"RCPT TO:<alice@example.test>")
        answer = raw.command(b"RCPT TO:<bob@example.test>")
        raw.close()
        if answer == "452 4.5.3" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer == "452 4.5.3"


def test_a_worker_that_dies_is_replaced(srv):
    victim = worker_pids(srv)[0]
    assert kill_and_await_replacement(srv, victim)
    for i in range(10):
        send(srv, ALICE, f"Subject: after {i}\r\n\r\nx\r\n".encode())
    assert len(inbox(srv, ALICE)) == 10


def test_a_worker_killed_under_load_loses_no_acknowledged_message(srv):
    """Deliveries commit in the workers: one killed while messages stream in takes only
    unacknowledged ones with it, and leaves nothing half-written."""
    bodies = {
        f"Subject: load {i}\r\n\r\n{'x' * (i * 997 % 200_000)}\r\n".encode() for i in range(120)
    }
    acknowledged: list[bytes] = []

    def sender(batch: list[bytes]) -> None:
        for body in batch:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                send(srv, ALICE, body)
                acknowledged.append(body)

    ordered = sorted(bodies)
    threads = [threading.Thread(target=sender, args=(ordered[k::6],)) for k in range(6)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 20:
        time.sleep(0.01)
    assert kill_and_await_replacement(srv, worker_pids(srv)[0])
    for thread in threads:
        thread.join()
    stored = [m[m.index(b"Subject: load") :] for m in inbox(srv, ALICE)]
    assert len(stored) == len(set(stored))  # nothing twice
    assert set(acknowledged) <= set(stored) <= bodies  # nothing acknowledged lost, nothing cut


def test_stop_ends_the_workers(server_factory):
    server = server_factory()
    pool = server.server.smtp_workers
    assert pool is not None
    procs = [w.proc for w in pool.workers]
    server.call(server.server.stop(grace=5), timeout=60)
    assert all(p is not None and p.poll() is not None for p in procs)


def test_a_worker_that_fails_to_start_is_retried_less_often(srv, monkeypatch):
    from postroom.smtp import workers

    monkeypatch.setattr(workers, "RESTART_DELAY", 0.05)
    monkeypatch.setattr(workers, "MAX_RESTART_DELAY", 0.2)
    pool = srv.server.smtp_workers
    worker = pool.workers[0]
    start, attempts = worker.start, []

    async def failing_start():
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise OSError("cannot start")
        return await start()

    monkeypatch.setattr(worker, "start", failing_start)
    victim = worker.proc.pid
    assert kill_and_await_replacement(srv, victim) and len(attempts) == 4
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.2  # doubled, then capped
    send(srv, ALICE, b"Subject: back\r\n\r\nx\r\n")
    assert len(inbox(srv, ALICE)) == 1
