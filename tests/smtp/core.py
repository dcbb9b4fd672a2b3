"""A tiny glue for driving the sans-IO core in unit tests: it answers decisions with fixed
replies and collects events, replies and messages."""

from __future__ import annotations

from collections.abc import Callable

from postroom.smtp.reply import OK, RECIPIENT_OK, SENDER_OK, Reply
from postroom.smtp.server import (
    NEED_DATA,
    AuthResponse,
    AuthStart,
    Event,
    Mail,
    Message,
    Options,
    Quit,
    Rcpt,
    ServerCore,
    StartTLS,
)


class Driver:
    def __init__(self, **options: object) -> None:
        opts = {"hostname": "mx.example.test", "max_size": 10_000, "max_recipients": 5}
        opts.update(options)
        self.core = ServerCore(Options(**opts))  # type: ignore[arg-type]
        self.greeting = self.core.data_to_send()
        self.events: list[Event] = []
        self.messages: list[Message] = []
        self.mail_reply: Reply = SENDER_OK
        self.rcpt_reply: Callable[[Rcpt], Reply] = lambda _: RECIPIENT_OK
        self.data_reply: Reply = OK
        self.auth: Callable[[AuthStart | AuthResponse], None] | None = None
        self.tls_requested = False
        self.auto_tls = False  # finish STARTTLS at once instead of stopping for the test

    def send(self, data: bytes) -> bytes:
        """Feed bytes, answer every decision, return the replies written."""
        self.core.receive(data)
        self.pump()
        return self.core.data_to_send()

    def pump(self) -> None:
        core = self.core
        while True:
            event = core.next_event()
            if event is NEED_DATA:
                return
            self.events.append(event)
            if isinstance(event, Quit):
                return
            if isinstance(event, Mail):
                core.answer(self.mail_reply)
            elif isinstance(event, Rcpt):
                core.answer(self.rcpt_reply(event), route=str(event.recipient))
            elif isinstance(event, Message):
                self.messages.append(event)
                core.answer(self.data_reply)
            elif isinstance(event, AuthStart | AuthResponse):
                assert self.auth is not None, "no AUTH handler set"
                self.auth(event)
            elif isinstance(event, StartTLS):
                if self.auto_tls:
                    self.start_tls()
                    continue
                self.tls_requested = True
                return  # the glue would flush and do the handshake now

    def start_tls(self, mechanisms: tuple[str, ...] = ("PLAIN",)) -> None:
        self.core.tls_started(mechanisms)
        self.tls_requested = False

    def ready(self) -> None:
        """EHLO + MAIL + RCPT done."""
        out = self.send(
            b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
        )
        assert codes(out)[-2:] == ["250 2.1.0", "250 2.1.5"], out


def codes(replies: bytes) -> list[str]:
    """The code (and enhanced code) of each complete reply, e.g. "250 2.1.0"."""
    out = []
    for line in replies.decode("utf-8").split("\r\n"):
        if len(line) >= 4 and line[3] == " ":
            parts = line.split(" ")
            enhanced = (
                parts[1] if len(parts) > 1 and parts[1][:1] in "245" and "." in parts[1] else ""
            )
            out.append(f"{line[:3]} {enhanced}".strip())
        elif len(line) == 3:
            out.append(line)
    return out
