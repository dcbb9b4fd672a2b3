"""Retries, restarts, giving up and delay reports, with real sockets."""

from __future__ import annotations

import argparse
import time

from postroom.outbound import admin
from postroom.outbound.queue import OutboundRecipient, RcptState
from tests.outbound.conftest import SENDER, wait_until
from tests.outbound.dnsserver import free_port
from tests.outbound.util import MESSAGE, gone, inbox, report_parts


def route_to(port: int, **queue) -> dict:
    settings: dict = {"relay": {"routes": {"remote.test": f"127.0.0.1:{port}"}}}
    if queue:
        settings["queue"] = queue
    return settings


async def _state(ob, queue_id: str, index: int = 0) -> RcptState | None:
    m = await ob.queue.get(queue_id)
    return None if m is None else m.recipients[index].state


def is_state(ob, queue_id: str, state: RcptState, index: int = 0):
    """A wait_until predicate: the recipient reached ``state``."""

    async def check() -> bool:
        return await _state(ob, queue_id, index) == state

    return check


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    admin.add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_unreachable_is_deferred_and_listed(harness, store, capsys):
    port = free_port()
    ob = await harness.start(settings=route_to(port, first_retry=3600.0, max_retry=3600.0))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(is_state(ob, queue_id, RcptState.DEFERRED))
    m = await ob.queue.get(queue_id)
    assert m.attempts == 1 and m.next_attempt > time.time() + 3000
    capsys.readouterr()
    assert await admin.queue_cmd(store, ob.settings, _cli("queue", "list")) == 0
    out = capsys.readouterr().out
    assert queue_id in out and "bob@remote.test  deferred  4.4.1" in out
    assert f"127.0.0.1[127.0.0.1]:{port}" in out and "1 message queued" in out


async def test_deferred_mail_is_delivered_after_restart(harness, sinks):
    port = free_port()
    ob = await harness.start(settings=route_to(port))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(is_state(ob, queue_id, RcptState.DEFERRED))
    await harness.stop(ob)

    sink = await sinks()
    ob = await harness.start(settings=route_to(sink.port))
    await wait_until(lambda: sink.sink.messages)
    await wait_until(lambda: gone(ob, queue_id))
    assert sink.sink.messages[0].data == MESSAGE


async def test_restart_never_resends_to_accepted_recipient(harness, sinks):
    sink = await sinks()
    sink.sink.rcpt_replies = ["250 2.1.5 ok", "451 4.2.0 mailbox busy"]
    ob = await harness.start(settings=route_to(sink.port, first_retry=3600.0, max_retry=3600.0))
    queue_id = await ob.submit(
        SENDER,
        [OutboundRecipient("bob@remote.test"), OutboundRecipient("carol@remote.test")],
        MESSAGE,
    )
    await wait_until(is_state(ob, queue_id, RcptState.DEFERRED, 1))
    assert await _state(ob, queue_id, 0) == RcptState.DELIVERED
    await harness.stop(ob)

    ob = await harness.start(settings=route_to(sink.port))
    assert await ob.queue.retry(queue_id, time.time()) == 1
    ob.wake()
    await wait_until(lambda: gone(ob, queue_id))
    assert [m.recipients for m in sink.sink.messages] == [
        ["bob@remote.test"],
        ["carol@remote.test"],
    ]


async def test_queued_mail_survives_a_stop_before_any_attempt(harness, sinks):
    sink = await sinks()
    ob = await harness.start(run=False, settings=route_to(sink.port))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await harness.stop(ob)
    ob = await harness.start(settings=route_to(sink.port))
    await wait_until(lambda: gone(ob, queue_id))
    assert len(sink.sink.messages) == 1


async def test_gives_up_and_bounces(harness, store):
    ob = await harness.start(settings=route_to(free_port(), give_up_after=0.3))
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: inbox(store))
    await wait_until(lambda: gone(ob, queue_id))
    _, human, [rcpt], _, _ = report_parts((await inbox(store))[0])
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "4.4.1"
    assert "gave up after" in rcpt["Diagnostic-Code"]


async def test_delay_report_is_sent_once(harness, store):
    ob = await harness.start(
        settings=route_to(free_port(), delay_warning_after=0.01, max_retry=0.05)
    )
    queue_id = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    await wait_until(lambda: inbox(store))

    async def attempts(n):
        m = await ob.queue.get(queue_id)
        return m.attempts >= n

    await wait_until(lambda: attempts(4))
    reports = await inbox(store)
    assert len(reports) == 1
    msg, _, [rcpt], _, _ = report_parts(reports[0])
    assert rcpt["Action"] == "delayed" and "Will-Retry-Until" in rcpt
    assert msg["Subject"] == "Delayed Mail (still being retried)"


async def test_admin_bounce_and_delete(harness, store, capsys):
    ob = await harness.start(settings=route_to(free_port(), first_retry=3600.0, max_retry=3600.0))
    a = await ob.submit(SENDER, [OutboundRecipient("bob@remote.test")], MESSAGE)
    b = await ob.submit(SENDER, [OutboundRecipient("carol@remote.test")], MESSAGE)
    await wait_until(is_state(ob, a, RcptState.DEFERRED))
    await wait_until(is_state(ob, b, RcptState.DEFERRED))
    assert await admin.queue_cmd(store, ob.settings, _cli("queue", "delete", b)) == 0
    assert await ob.queue.get(b) is None
    assert await admin.queue_cmd(store, ob.settings, _cli("queue", "show", a)) == 0
    assert "Subject: outbound test" in capsys.readouterr().out
    assert await admin.queue_cmd(store, ob.settings, _cli("queue", "bounce", a)) == 0
    ob.wake()
    await wait_until(lambda: inbox(store))
    await wait_until(lambda: gone(ob, a))
    _, _, [rcpt], _, _ = report_parts((await inbox(store))[0])
    assert rcpt["Status"] == "5.0.0" and "administrator" in rcpt["Diagnostic-Code"]
    assert await admin.queue_cmd(store, ob.settings, _cli("queue", "show", "nope")) == 1
