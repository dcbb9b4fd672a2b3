"""The sans-IO IMAP core: bytes in -> events out (DESIGN principle 1).

It frames commands with the bounds of the current state, parses them, and checks that the
command is valid in that state (RFC 9051 §3).  Everything that needs the store, the
authenticator or the clock is the glue's job (``session``); what comes out of here is either
bytes to send, a command to execute, or a bare line the glue asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from postroom.imap import framer, response
from postroom.imap.framer import Framer, Line
from postroom.imap.parser import Command, CommandError, parse


class State(IntEnum):
    NOT_AUTHENTICATED = 0
    AUTHENTICATED = 1
    SELECTED = 2
    LOGOUT = 3


@dataclass(slots=True)
class Send:
    data: bytes


@dataclass(slots=True)
class Close:
    """Send ``data`` and end the session."""

    data: bytes


@dataclass(slots=True)
class Execute:
    command: Command


Event = Send | Close | Execute | Line

_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_NOT_AUTH = _ANY | {"STARTTLS", "AUTHENTICATE", "LOGIN"}
_AUTH = _ANY | {
    "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
    "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
    "SETQUOTA", "COMPRESS",
}  # fmt: skip
_SELECTED = (_AUTH - {"ENABLE"}) | {
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
    "SORT", "THREAD", "UID FETCH", "UID SEARCH", "UID STORE", "UID COPY", "UID MOVE",
    "UID EXPUNGE", "UID SORT", "UID THREAD",
}  # fmt: skip
ALLOWED = {
    State.NOT_AUTHENTICATED: _NOT_AUTH,
    State.AUTHENTICATED: _AUTH,
    State.SELECTED: _SELECTED,
    State.LOGOUT: frozenset(),
}
CONTINUE = b"+ Ready for literal data\r\n"


def _refusal(state: State, name: str) -> str:
    if state == State.NOT_AUTHENTICATED and name in _SELECTED | _AUTH:
        return "Log in first"
    if name in _NOT_AUTH:
        return "Already authenticated"
    if name in _SELECTED:
        return "No mailbox selected"
    return "Not allowed now"


class Core:
    def __init__(self, message_size: int) -> None:
        self.message_size = message_size
        self.state = State.NOT_AUTHENTICATED
        self.framer = Framer(framer.PRE_AUTH)

    def feed(self, data: bytes) -> None:
        self.framer.feed(data)

    def set_state(self, state: State) -> None:
        if self.state == State.NOT_AUTHENTICATED and state != State.NOT_AUTHENTICATED:
            self.framer.limits = framer.post_auth(self.message_size)
        self.state = state

    def expect_line(self) -> None:
        self.framer.expect_line()

    def clear(self) -> None:
        """Drop everything buffered (after STARTTLS)."""
        self.framer.clear()

    def take_buffered(self) -> bytes:
        """Hand back the bytes received after the last command (after COMPRESS they are
        compressed and must go through the decompressor first)."""
        return self.framer.take_buffered()

    def next_event(self) -> Event | None:
        event = self.framer.next_event()
        if event is None or isinstance(event, Line):
            return event
        if isinstance(event, framer.Continue):
            return Send(CONTINUE)
        if isinstance(event, framer.Refused):
            return Close(event.response) if event.close else Send(event.response)
        try:
            command = parse(event.lines, event.literals)
        except CommandError as exc:
            return Send(response.tagged(exc.tag, "BAD", exc.message))
        if command.name not in ALLOWED[self.state]:
            return Send(response.tagged(command.tag, "BAD", _refusal(self.state, command.name)))
        return Execute(command)
