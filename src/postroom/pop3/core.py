"""The POP3 server protocol as a sans-IO state machine (RFC 1939, 2449, 2595, 5034, 6856).

Bytes go in with ``receive``; ``next_event`` hands out what the session must do next.  A
``Reply`` or ``Close`` is answered by the core alone (everything that only needs the maildrop
snapshot: STAT, LIST, UIDL, DELE, RSET, NOOP, CAPA, ...).  The other events need I/O (checking
a password, reading a message, the UPDATE state, STARTTLS); the session performs it and calls
the matching completion method, which returns the reply.  Until then the core hands out no
further event, so pipelined commands (RFC 2449 §6.6) are answered strictly in order.

APOP (RFC 1939 §7) is not offered: it needs the plaintext password (or an equivalent) on the
server to compute MD5(timestamp + secret), and postroom stores only an argon2id hash and SCRAM
keys.  The greeting therefore carries no timestamp and APOP is answered with -ERR;
SCRAM-SHA-256 gives the same "no password on the wire" property without that secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from postroom.pop3.maildrop import Maildrop
from postroom.pop3.wire import message_reply, multiline

# RFC 2449 §4: a command line is at most 255 octets including the CRLF.
MAX_COMMAND_LINE = 255
# RFC 5034 §4 lets SASL data exceed that (AUTH with an initial response, continuation
# lines); this bound keeps such lines finite.
MAX_SASL_LINE = 12288
# Errors a session may make (unknown commands, bad syntax, lines too long) before it is
# closed, and authentication failures per connection (the Authenticator also throttles per IP
# and per account, across connections).
MAX_BAD_COMMANDS = 10
MAX_AUTH_FAILURES = 5
# Message numbers and TOP line counts have at most this many digits.
MAX_DIGITS = 20


class State(Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reply:
    """Send these bytes; the session goes on."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Send these bytes, then end the session."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTls:
    """Send ``reply``, run the TLS handshake, then call ``tls_started``."""

    reply: bytes


@dataclass(frozen=True, slots=True)
class Login:
    """USER/PASS: check the password, then ``logged_in`` or ``login_failed``."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class SaslStart:
    """AUTH: start the mechanism (``initial`` None = no initial response), then
    ``sasl_challenge``, ``logged_in`` or ``login_failed``."""

    mechanism: str
    initial: bytes | None


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """The client's decoded answer to the last challenge; step the exchange again."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SaslCancel:
    """The client cancelled ("*") or sent garbage: cancel the exchange, send ``reply``."""

    reply: bytes


@dataclass(frozen=True, slots=True)
class Retrieve:
    """RETR (``body_lines`` None) or TOP: read message ``uid``, then ``retrieved`` or
    ``retrieve_failed``.  ``mark_seen``: RETR of a message not yet \\Seen."""

    number: int
    uid: int
    body_lines: int | None
    mark_seen: bool


@dataclass(frozen=True, slots=True)
class Update:
    """QUIT in TRANSACTION: the UPDATE state (RFC 1939 §6).  Flag ``uids`` \\Deleted and
    expunge exactly those, then ``update_done``."""

    uids: tuple[int, ...]


Event = Reply | Close | StartTls | Login | SaslStart | SaslResponse | SaslCancel | Retrieve | Update

_TOO_LONG = object()


def _ok(text: str) -> Reply:
    return Reply(f"+OK {text}\r\n".encode() if text else b"+OK\r\n")


def _err(text: str) -> Reply:
    return Reply(f"-ERR {text}\r\n".encode())


def _number(text: str) -> int | None:
    """A decimal argument (message number, line count), None when malformed."""
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _b64decode(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_CONTROLS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Pop3Core:
    """One POP3 session's protocol state.

    ``mechanisms`` are the SASL mechanisms offered on this connection and
    ``plaintext_allowed`` says whether USER/PASS may be used; both are given again by
    ``tls_started`` because STLS changes them (RFC 2595 §4).
    """

    def __init__(
        self,
        hostname: str,
        *,
        secure: bool,
        tls_available: bool,
        mechanisms: Sequence[str],
        plaintext_allowed: bool,
    ) -> None:
        self.hostname = hostname
        self.secure = secure
        self.tls_available = tls_available
        self.mechanisms = [m.upper() for m in mechanisms]
        self.plaintext_allowed = plaintext_allowed
        self.state = State.AUTHORIZATION
        self.maildrop: Maildrop | None = None
        self.utf8 = False  # RFC 6856 UTF-8 mode
        self.bad_commands = 0
        self.auth_failures = 0
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line: drop up to its LF
        self._pending: Event | None = None  # the I/O event awaiting its completion call
        self._sasl = False  # the next line answers a SASL challenge
        self._user: str | None = None  # from USER, waiting for PASS

    # -- input -----------------------------------------------------------------------
    def greeting(self) -> bytes:
        """RFC 1939 §4; no APOP timestamp (see the module docstring)."""
        return f"+OK {self.hostname} POP3 server ready\r\n".encode()

    def receive(self, data: bytes) -> None:
        if self.state is not State.CLOSED:
            self._buffer += data

    def next_event(self) -> Event | None:
        """The next thing to do, or None when more input (or a completion call) is needed."""
        if self._pending is not None or self.state in (State.UPDATE, State.CLOSED):
            return None
        line = self._next_line()
        if line is None:
            return None
        if line is _TOO_LONG:
            if self._sasl:
                return self._sasl_abort("SASL response too long")
            return self._bad("line too long")
        assert isinstance(line, bytes)
        if self._sasl:
            return self._sasl_line(line)
        return self._command(line)

    def _next_line(self) -> bytes | object | None:
        """One line without its terminator (CRLF, or a bare LF from lenient clients),
        ``_TOO_LONG`` for an over-long one (dropped), None when incomplete."""
        buf = self._buffer
        while True:
            nl = buf.find(b"\n")
            if self._discarding:
                if nl < 0:
                    buf.clear()
                    return None
                del buf[: nl + 1]
                self._discarding = False
                return _TOO_LONG
            if nl < 0:
                if len(buf) > MAX_SASL_LINE:
                    self._discarding = True
                    continue
                return None
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 2 > MAX_COMMAND_LINE and not self._long_line_allowed(line):
                return _TOO_LONG
            if len(line) + 2 > MAX_SASL_LINE:
                return _TOO_LONG
            return line

    def _long_line_allowed(self, line: bytes) -> bool:
        return self._sasl or line[:5].upper() == b"AUTH "

    # -- errors --------------------------------------------------------------------------
    def _bad(self, text: str) -> Reply | Close:
        """A protocol error; too many of them end the session (DESIGN principle 7)."""
        self.bad_commands += 1
        if self.bad_commands >= MAX_BAD_COMMANDS:
            self.state = State.CLOSED
            return Close(f"-ERR {text}; too many errors, closing connection\r\n".encode())
        return _err(text)

    # -- commands ------------------------------------------------------------------------
    def _command(self, line: bytes) -> Event:
        if _CONTROLS.search(line):
            return self._bad("control characters in command")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return self._bad("command is not valid UTF-8")
        keyword, _, arg = text.partition(" ")
        keyword = keyword.upper()
        handlers = (
            self._authorization_commands
            if self.state is State.AUTHORIZATION
            else self._transaction_commands
        )
        handler = handlers.get(keyword)
        if handler is None:
            if keyword in _ALL_COMMANDS:
                return self._bad(f"{keyword} is not valid in the {self.state.value} state")
            return self._bad("unknown command")
        return handler(self, arg)

    def _capa(self, arg: str) -> Event:
        """RFC 2449 §5; USER, SASL and STLS only where they can be used now."""
        if arg:
            return self._bad("CAPA takes no argument")
        caps = ["TOP", "UIDL"]
        authorization = self.state is State.AUTHORIZATION
        if authorization and self.plaintext_allowed:
            caps.append("USER")
        if authorization and self.mechanisms:
            caps.append("SASL " + " ".join(self.mechanisms))
        caps += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        caps.append("IMPLEMENTATION postroom")
        if authorization and self.tls_available and not self.secure:
            caps.append("STLS")  # RFC 2595 §4
        # RFC 6856 §2: "USER" says USER/PASS take UTF-8 names and passwords.
        caps.append("UTF8 USER" if self.plaintext_allowed else "UTF8")
        return Reply(multiline("capability list follows", caps))

    def _quit(self, arg: str) -> Event:
        if arg:
            return self._bad("QUIT takes no argument")
        if self.state is State.AUTHORIZATION:
            self.state = State.CLOSED
            return Close(f"+OK {self.hostname} POP3 server signing off\r\n".encode())
        # RFC 1939 §6: QUIT from TRANSACTION enters UPDATE; only now are DELEs applied.
        assert self.maildrop is not None
        self.state = State.UPDATE
        event = Update(tuple(self.maildrop.deleted_uids()))
        self._pending = event
        return event

    # AUTHORIZATION -----------------------------------------------------------------------
    def _user(self, arg: str) -> Event:
        """RFC 1939 §7 USER; always "+OK" so that USER does not reveal which names exist."""
        if not self.plaintext_allowed:
            self._user = None
            return self._bad(
                "[AUTH] plaintext authentication disallowed on non-secure connections; use STLS"
            )
        name = arg.strip()
        if not name:
            return self._bad("USER needs a name")
        self._user = name
        return _ok("send PASS")

    def _pass(self, arg: str) -> Event:
        """RFC 1939 §7 PASS: the argument is the rest of the line, spaces included."""
        if self._user is None:
            return self._bad("USER first")
        if not arg:
            return self._bad("PASS needs a password")
        user, self._user = self._user, None
        event = Login(user, arg)
        self._pending = event
        return event

    def _apop(self, arg: str) -> Event:
        return self._bad("APOP is not available; use AUTH SCRAM-SHA-256, AUTH PLAIN or USER/PASS")

    def _auth(self, arg: str) -> Event:
        """RFC 5034 §4 AUTH mechanism [initial-response]."""
        self._user = None
        if not arg:
            # RFC 1734's mechanism list, still sent by some clients before AUTH.
            return Reply(multiline("SASL mechanisms follow", self.mechanisms))
        parts = arg.split(" ")
        if len(parts) > 2 or not parts[0]:
            return self._bad("syntax: AUTH mechanism [initial-response]")
        mechanism = parts[0].upper()
        if mechanism not in self.mechanisms:
            if not self.mechanisms and not self.secure:
                return self._bad(
                    "[AUTH] plaintext authentication disallowed on non-secure connections; use STLS"
                )
            return self._bad("unsupported SASL mechanism")
        initial: bytes | None = None
        if len(parts) == 2:
            # RFC 5034 §4: "=" is an empty initial response.
            initial = b"" if parts[1] == "=" else _b64decode(parts[1].encode())
            if initial is None:
                return self._bad("initial response is not valid base64")
        event = SaslStart(mechanism, initial)
        self._pending = event
        return event

    def _sasl_line(self, line: bytes) -> Event:
        self._sasl = False
        if line == b"*":
            # RFC 5034 §4: the client cancels, the server rejects the AUTH command.
            return SaslCancel(b"-ERR authentication cancelled\r\n")
        data = _b64decode(line)
        if data is None:
            return self._sasl_abort("SASL response is not valid base64")
        event = SaslResponse(data)
        self._pending = event
        return event

    def _sasl_abort(self, text: str) -> SaslCancel:
        """A broken SASL line ends the exchange (RFC 5034 §4) and counts as an error; when it
        is one too many the core is CLOSED and the session ends after the reply."""
        self._sasl = False
        return SaslCancel(self._bad(text).data)

    def _stls(self, arg: str) -> Event:
        """RFC 2595 §4."""
        if arg:
            return self._bad("STLS takes no argument")
        if self.secure:
            return self._bad("TLS is already active")
        if not self.tls_available:
            return self._bad("TLS is not available")
        event = StartTls(b"+OK begin TLS negotiation\r\n")
        self._pending = event
        return event

    def _utf8(self, arg: str) -> Event:
        """RFC 6856 §2: switch to UTF-8 mode.  Messages are always sent as stored (no
        downgrade), so the mode only records that the client asked."""
        if arg:
            return self._bad("UTF8 takes no argument")
        self.utf8 = True
        return _ok("UTF-8 mode enabled")

    # TRANSACTION -------------------------------------------------------------------------
    def _message(self, arg: str) -> tuple[int, Reply | Close | None]:
        """Parse a message-number argument: (number, None) or (0, error reply)."""
        assert self.maildrop is not None
        number = _number(arg)
        if number is None:
            return 0, self._bad("a message number is required")
        if self.maildrop.get(number) is None:
            if 1 <= number <= len(self.maildrop):
                return 0, _err(f"message {number} is deleted")
            return 0, _err(f"no such message, only {len(self.maildrop)} in maildrop")
        return number, None

    def _stat(self, arg: str) -> Event:
        assert self.maildrop is not None
        if arg:
            return self._bad("STAT takes no argument")
        count, size = self.maildrop.stat()
        return _ok(f"{count} {size}")

    def _list(self, arg: str) -> Event:
        assert self.maildrop is not None
        drop = self.maildrop
        if not arg:
            count, size = drop.stat()
            lines = [f"{n} {e.size}" for n, e in drop.live()]
            return Reply(multiline(f"{count} messages ({size} octets)", lines))
        number, error = self._message(arg)
        if error is not None:
            return error
        return _ok(f"{number} {drop.entries[number - 1].size}")

    def _uidl(self, arg: str) -> Event:
        assert self.maildrop is not None
        drop = self.maildrop
        if not arg:
            lines = [f"{n} {drop.uidl(e)}" for n, e in drop.live()]
            return Reply(multiline("unique-id listing follows", lines))
        number, error = self._message(arg)
        if error is not None:
            return error
        return _ok(f"{number} {drop.uidl(drop.entries[number - 1])}")

    def _retr(self, arg: str) -> Event:
        assert self.maildrop is not None
        number, error = self._message(arg)
        if error is not None:
            return error
        entry = self.maildrop.entries[number - 1]
        event = Retrieve(number, entry.uid, None, mark_seen=not entry.seen)
        self._pending = event
        return event

    def _top(self, arg: str) -> Event:
        assert self.maildrop is not None
        parts = arg.split(" ")
        if len(parts) != 2 or (lines := _number(parts[1])) is None:
            return self._bad("syntax: TOP message lines")
        number, error = self._message(parts[0])
        if error is not None:
            return error
        entry = self.maildrop.entries[number - 1]
        event = Retrieve(number, entry.uid, lines, mark_seen=False)
        self._pending = event
        return event

    def _dele(self, arg: str) -> Event:
        assert self.maildrop is not None
        number, error = self._message(arg)
        if error is not None:
            return error
        self.maildrop.deleted.add(number)
        return _ok(f"message {number} deleted")

    def _noop(self, arg: str) -> Event:
        if arg:
            return self._bad("NOOP takes no argument")
        return _ok("")

    def _rset(self, arg: str) -> Event:
        assert self.maildrop is not None
        if arg:
            return self._bad("RSET takes no argument")
        self.maildrop.deleted.clear()
        count, size = self.maildrop.stat()
        return _ok(f"maildrop has {count} messages ({size} octets)")

    _authorization_commands: dict[str, Callable[[Pop3Core, str], Event]] = {
        "CAPA": _capa,
        "USER": _user,
        "PASS": _pass,
        "APOP": _apop,
        "AUTH": _auth,
        "STLS": _stls,
        "UTF8": _utf8,
        "QUIT": _quit,
    }
    _transaction_commands: dict[str, Callable[[Pop3Core, str], Event]] = {
        "CAPA": _capa,
        "STAT": _stat,
        "LIST": _list,
        "UIDL": _uidl,
        "RETR": _retr,
        "TOP": _top,
        "DELE": _dele,
        "NOOP": _noop,
        "RSET": _rset,
        "QUIT": _quit,
    }

    # -- completions -------------------------------------------------------------------
    def _complete(self, kind: type) -> Event:
        event = self._pending
        if not isinstance(event, kind):
            raise RuntimeError(f"no {kind.__name__} is pending")
        self._pending = None
        return event

    def tls_started(self, mechanisms: Sequence[str], plaintext_allowed: bool) -> None:
        """The handshake succeeded.  Whatever the client pipelined after STLS was sent in
        plaintext and is dropped (RFC 2595 §4; the CVE-2011-0411 class), and the session
        starts over in the AUTHORIZATION state with the TLS capabilities."""
        self._complete(StartTls)
        self._buffer.clear()
        self._discarding = False
        self._user = None
        self.secure = True
        self.mechanisms = [m.upper() for m in mechanisms]
        self.plaintext_allowed = plaintext_allowed

    def sasl_challenge(self, data: bytes) -> Reply:
        """RFC 5034 §4: "+ " and the base64 challenge; the next line is the response."""
        event = self._pending
        if not isinstance(event, SaslStart | SaslResponse):
            raise RuntimeError("no SASL exchange is pending")
        self._pending = None
        self._sasl = True
        return Reply(b"+ " + base64.b64encode(data) + b"\r\n")

    def logged_in(self, maildrop: Maildrop) -> Reply:
        """Authentication succeeded and the maildrop is locked: TRANSACTION state."""
        if not isinstance(self._pending, Login | SaslStart | SaslResponse):
            raise RuntimeError("no authentication is pending")
        self._pending = None
        self.state = State.TRANSACTION
        self.maildrop = maildrop
        count, size = maildrop.stat()
        return _ok(f"maildrop has {count} messages ({size} octets)")

    def login_failed(self, code: str, text: str) -> Reply | Close:
        """Authentication failed (``code`` "AUTH"), was throttled ("SYS/TEMP") or the
        maildrop is locked ("IN-USE") (RFC 2449 §8, RFC 3206)."""
        if not isinstance(self._pending, Login | SaslStart | SaslResponse):
            raise RuntimeError("no authentication is pending")
        self._pending = None
        self.auth_failures += 1
        if self.auth_failures >= MAX_AUTH_FAILURES:
            self.state = State.CLOSED
            return Close(
                f"-ERR [{code}] {text}; too many failures, closing connection\r\n".encode()
            )
        return Reply(f"-ERR [{code}] {text}\r\n".encode())

    def retrieved(self, data: bytes) -> Reply:
        """The message's bytes for the pending RETR/TOP."""
        event = self._complete(Retrieve)
        assert isinstance(event, Retrieve) and self.maildrop is not None
        if event.mark_seen:
            entry = self.maildrop.entries[event.number - 1]
            self.maildrop.entries[event.number - 1] = replace(entry, seen=True)
        return Reply(message_reply(data, event.body_lines))

    def retrieve_failed(self) -> Reply:
        """The message vanished (expunged through IMAP since the snapshot)."""
        event = self._complete(Retrieve)
        assert isinstance(event, Retrieve)
        return _err(f"message {event.number} was removed by another session")

    def update_done(self, ok: bool, removed: int) -> Close:
        """The UPDATE state ended (RFC 1939 §6)."""
        self._complete(Update)
        self.state = State.CLOSED
        if not ok:
            return Close(b"-ERR [SYS/TEMP] some deleted messages not removed\r\n")
        return Close(
            f"+OK {self.hostname} POP3 server signing off ({removed} messages deleted)\r\n".encode()
        )


_ALL_COMMANDS = frozenset(Pop3Core._authorization_commands) | frozenset(
    Pop3Core._transaction_commands
)
