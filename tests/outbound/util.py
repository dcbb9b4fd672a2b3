"""Helpers shared by the outbound tests."""

from __future__ import annotations

from types import SimpleNamespace

import dns.nameserver
import dns.resolver

from postroom.outbound.dkim import DkimKey
from postroom.outbound.worker import Outbound
from tests.outbound.dnsserver import LoopbackDNS

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.test>\r\n"
    b"Subject: outbound test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"\r\n"
    b"bye\r\n"
)


def app_for(ob: Outbound) -> SimpleNamespace:
    """What submit.enqueue needs from the server's App."""
    return SimpleNamespace(outbound=ob, settings=ob.settings, store=ob.store)


def publish_key(server: LoopbackDNS, key: DkimKey) -> None:
    value = key.dns_value()
    chunks = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
    server.zone.add(f"{key.dns_name}. 60 IN TXT {chunks}")


def dkim_dns(server: LoopbackDNS):
    """A dkimpy ``dnsfunc`` that asks the loopback DNS server."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", server.port)]

    def get_txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(answer[0].strings)

    return get_txt


def remote_zone(
    server: LoopbackDNS, domain: str = "remote.test", mx: str = "mx.remote.test"
) -> None:
    server.zone.add(f"{domain}. 60 IN MX 10 {mx}.")
    server.zone.add(f"{mx}. 60 IN A 127.0.0.1")


async def gone(ob: Outbound, queue_id: str) -> bool:
    """The message left the queue (every recipient final and reported)."""
    return await ob.queue.get(queue_id) is None


async def inbox(store, address: str = "alice@example.test") -> list[bytes]:
    """The raw messages in an account's INBOX, oldest first."""
    account = await store.get_account(address)
    box = await store.get_mailbox(account.id, "INBOX")
    messages = await store.fetch(box.id, await store.uids(box.id))
    return [await store.read_blob(m.blob_id) for m in messages]


def report_parts(raw: bytes):
    """(message, human text, list of per-recipient field dicts, per-message fields, third part)."""
    import email
    import email.policy

    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = msg.get_payload()
    human = parts[0].get_payload(decode=True).decode()
    status = parts[1].get_payload()
    # message/delivery-status: the email package gives one Message per block.
    blocks = [dict(block.items()) for block in status]
    return msg, human, blocks[1:], blocks[0], parts[2]
