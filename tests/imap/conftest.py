from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Iterator

import pytest

from tests.helpers import PASSWORD, client_tls_context
from tests.imap.raw import Raw

USER = "alice@example.test"


@pytest.fixture
def srv(server):
    """The shared server fixture with one account."""
    server.add_user(USER)
    return server


@pytest.fixture
def connect(srv) -> Iterator:
    """Open logged-in raw IMAPS sessions; all are closed afterwards."""
    opened: list[Raw] = []

    def open_(login: bool = True) -> Raw:
        raw = Raw(srv.port("imaps"))
        opened.append(raw)
        if login:
            assert raw.login(USER, PASSWORD)[-1].split(b" ")[1] == b"OK"
        return raw

    yield open_
    for raw in opened:
        raw.close()


@pytest.fixture
def imap(srv) -> Iterator[imaplib.IMAP4_SSL]:
    client = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_tls_context())
    client.login(USER, PASSWORD)
    yield client
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        client.logout()


def message(subject: str = "Hello", body: str = "Hi there.\r\n", sender: str = "bob@example.org",
            extra: str = "") -> bytes:  # fmt: skip
    return (
        f"From: Bob <{sender}>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n"
        f"{extra}\r\n{body}"
    ).encode()


def deliver(srv, data: bytes, mailbox: str = "INBOX", flags=()) -> int:
    """Put a message into the account's mailbox through the store (as SMTP would)."""

    async def go() -> int:
        account = await srv.store.get_account(USER)
        mb = await srv.store.get_mailbox(account.id, mailbox)
        return (await srv.store.append(mb.id, data, flags)).uid

    return srv.call(go())
