"""The SMTP server protocol as a sans-IO state machine (RFC 5321 and its extensions).

Bytes go in with ``receive``; ``next_event`` returns the next thing the glue must act on, or
``NEED_DATA``; replies accumulate and ``data_to_send`` hands them out.  The core checks syntax,
sequence and limits and answers those itself; decisions that need the store, the
authenticator or TLS are events the glue must answer before asking for the next event:

    Mail, Rcpt, Message   -> answer(reply)          (Rcpt: answer(reply, route=...))
    AuthStart, AuthResponse -> auth_challenge(data) / auth_succeeded(user) / answer(failure)
    StartTLS              -> tls_started(mechanisms) once the handshake is done
    Quit                  -> send what is pending, then close
    Hello, AuthCancelled, Refused -> informative only (logging)

PIPELINING (RFC 2920): every complete command line in a chunk is parsed in order; the glue
answers them and flushes once per batch.  Lines after DATA, BDAT, AUTH or STARTTLS are not
commands, so the core never looks past a command whose meaning for the following bytes is
still undecided.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from postroom.smtp import params as esmtp
from postroom.smtp.address import Address, PathError, parse_path
from postroom.smtp.data import DotReader
from postroom.smtp.reply import (
    AUTH_CANCELLED,
    AUTH_OK,
    AUTH_REQUIRED,
    BYE,
    OK,
    TLS_READY,
    TOO_BIG,
    TOO_MANY_RECIPIENTS,
    Reply,
    sanitize,
)

# RFC 5321 §4.5.3.1.4 allows 512 octets per command line; extensions raise it (SIZE, DSN and
# SMTPUTF8 parameters), so 1000 is the practical bound.  RFC 4954 §4 raises it to 12288 for
# AUTH and the SASL responses that follow.
MAX_COMMAND_LINE = 1000
MAX_AUTH_LINE = 12288
# DATA lines: RFC 5321 §4.5.3.1.6 says 1000 with CRLF; longer lines are kept intact up to this.
MAX_DATA_LINE = 65536
MAX_ERRORS = 20  # permanent (5xx) replies before 421 (Postfix smtpd_hard_error_limit)
# NOOP/RSET/VRFY/HELP/HELO/EHLO without a delivered message (Postfix smtpd_junk_command_limit)
MAX_JUNK = 100

_MECHANISM = re.compile(rb"[A-Z0-9_-]{1,20}")  # RFC 4422 §3.1 sasl-mech
_BDAT_ARGS = re.compile(r"([0-9]{1,20})(?: +(LAST))?", re.IGNORECASE | re.ASCII)
_HELO = re.compile(r"[\x21-\x7e\u00a0-\u2027\u202a-\U0010ffff]{1,255}")  # one token
_POSTMASTER = re.compile(r"<postmaster>", re.IGNORECASE | re.ASCII)
_SKIPPED = b"<over-long line skipped>"  # identity-compared marker returned by _line

NO_ARGS = Reply(501, "5.5.4", "Syntax error: no arguments allowed")
LINE_TOO_LONG = Reply(500, "5.5.6", "Line too long")
UNKNOWN_COMMAND = Reply(500, "5.5.2", "Command not recognised")
BAD_CHARS = Reply(501, "5.5.2", "Invalid characters in command line")


# -- events -------------------------------------------------------------------------------
class NeedData:
    """Nothing to do until more bytes arrive (flush replies, then read)."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(slots=True)
class Recipient:
    address: Address  # domain "" for the special <Postmaster> (RFC 5321 §4.5.1)
    params: esmtp.RcptParams
    route: object = None  # what the glue decided for it (local accounts, or remote)


@dataclass(slots=True)
class Transaction:
    sender: Address | None  # None: the null reverse-path <>
    params: esmtp.MailParams
    recipients: list[Recipient] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)  # BDAT data so far
    chunked_size: int = 0
    chunked: bool = False  # BDAT used: DATA is then out of sequence (RFC 3030 §2)


@dataclass(frozen=True, slots=True)
class Hello:
    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class Mail:
    sender: Address | None
    params: esmtp.MailParams


@dataclass(frozen=True, slots=True)
class Rcpt:
    recipient: Address
    params: esmtp.RcptParams
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class Message:
    """The end of DATA or the last BDAT: deliver, then answer (250 only once durable)."""

    transaction: Transaction
    data: bytes


@dataclass(frozen=True, slots=True)
class StartTLS:
    pass


@dataclass(frozen=True, slots=True)
class AuthStart:
    mechanism: str
    initial: bytes | None  # decoded initial response (RFC 4954 §4); b"" for "="


@dataclass(frozen=True, slots=True)
class AuthResponse:
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthCancelled:
    """The exchange ended without an outcome (client "*" or bad base64): cancel it."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The core refused a command by itself (for the log)."""

    command: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str


Event = (
    NeedData
    | Hello
    | Mail
    | Rcpt
    | Message
    | StartTLS
    | AuthStart
    | AuthResponse
    | AuthCancelled
    | Refused
    | Quit
)


@dataclass(slots=True)
class Options:
    hostname: str
    max_size: int
    max_recipients: int
    secure: bool = False  # TLS is on (implicit TLS, or after STARTTLS)
    starttls: bool = True  # STARTTLS may be offered while not secure
    auth_required: bool = False  # submission: AUTH before MAIL (RFC 6409 §4.3)
    mechanisms: tuple[str, ...] = ()  # SASL mechanisms allowed on this connection now
    max_data_line: int = MAX_DATA_LINE
    max_errors: int = MAX_ERRORS
    max_junk: int = MAX_JUNK


_COMMAND, _DATA, _BDAT, _SASL, _WAIT, _CLOSED = range(6)


class ServerCore:
    """One SMTP server session, without I/O."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.secure = options.secure
        self.mechanisms = options.mechanisms
        self.helo: str | None = None
        self.esmtp = False
        self.user: str | None = None  # the authenticated identity
        self.transaction: Transaction | None = None
        self.errors = 0
        self.junk = 0
        self._in = bytearray()
        self._out: list[bytes] = []
        self._state = _COMMAND
        self._pending: str | None = None  # the decision the glue owes: mail/rcpt/data/auth/tls
        self._staged: object = None  # what that decision is about
        self._events: list[Event] = []  # informative events queued before the next one
        self._discarding = False  # inside an over-long command line
        self._reader: DotReader | None = None
        self._bdat_left = 0
        self._bdat_last = False
        self._bdat_error: Reply | None = None
        self._quit: Quit | None = None
        self._out.append(f"220 {sanitize(options.hostname)} ESMTP postroom\r\n".encode())

    # -- glue API ------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    def receive(self, data: bytes) -> None:
        if self._state != _CLOSED:
            self._in += data

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event:
        if self._pending is not None:
            raise RuntimeError(f"the {self._pending} decision has not been answered")
        while True:
            if self._events:
                return self._events.pop(0)
            if self._quit is not None:
                return self._quit
            if self._state == _COMMAND:
                auth = self._in[:5].upper() == b"AUTH "
                line = self._line(MAX_AUTH_LINE if auth else MAX_COMMAND_LINE)
                if line is None:
                    return NEED_DATA
                if line is not _SKIPPED:
                    event = self._command(line)
                    if event is not None:
                        return event
            elif self._state == _DATA:
                event = self._data()
                if event is not None:
                    return event
            elif self._state == _BDAT:
                event = self._bdat()
                if event is not None:
                    return event
            elif self._state == _SASL:
                line = self._line(MAX_AUTH_LINE)
                if line is None:
                    return NEED_DATA
                if line is not _SKIPPED:
                    event = self._sasl_line(line)
                    if event is not None:
                        return event
            else:  # _WAIT: a STARTTLS handshake; nothing is read until it is done
                return NEED_DATA

    def answer(self, reply: Reply, *, route: object = None) -> None:
        """The glue's decision on a Mail, Rcpt or Message event, or a failed AUTH."""
        if self._pending == "tls" or (self._pending == "auth" and reply.positive):
            raise RuntimeError("use tls_started / auth_succeeded for these decisions")
        kind, staged = self._take_pending()
        if kind == "mail" and reply.positive:
            assert isinstance(staged, Mail)
            self.transaction = Transaction(staged.sender, staged.params)
        elif kind == "rcpt" and reply.positive:
            assert isinstance(staged, Rcpt) and self.transaction is not None
            self.transaction.recipients.append(Recipient(staged.recipient, staged.params, route))
        elif kind == "data":
            self.transaction = None
            if reply.positive:
                self.junk = 0
        elif kind == "auth":
            self._state = _COMMAND
        self._reply(reply)

    def auth_challenge(self, data: bytes) -> None:
        """Send a SASL challenge (334, RFC 4954 §4); the next line is the client's answer."""
        self._take_pending("auth")
        self._out.append(b"334 " + base64.b64encode(data) + b"\r\n")
        self._state = _SASL

    def auth_succeeded(self, user: str) -> None:
        self._take_pending("auth")
        self.user = user
        self._state = _COMMAND
        self._reply(AUTH_OK)

    def tls_started(self, mechanisms: tuple[str, ...]) -> None:
        """RFC 3207 §4.2: after the handshake the server forgets everything it knew from the
        client (EHLO, AUTH, transaction) and any bytes received before the handshake."""
        self._take_pending("tls")
        self._in.clear()
        self._discarding = False
        self.secure = True
        self.mechanisms = mechanisms
        self.helo = None
        self.esmtp = False
        self.user = None
        self.transaction = None
        self._state = _COMMAND

    def timed_out(self) -> None:
        """RFC 5321 §4.5.3.2: the client was idle too long."""
        self._close(
            Reply(421, "4.4.2", f"{self.options.hostname} Timeout, closing connection"), "timeout"
        )

    def shutting_down(self) -> None:
        self._close(Reply(421, "4.3.2", f"{self.options.hostname} Shutting down"), "shutdown")

    # -- internals: lines and replies ----------------------------------------------------
    def _take_pending(self, expected: str | None = None) -> tuple[str, object]:
        kind, staged = self._pending, self._staged
        if kind is None or (expected is not None and kind != expected):
            raise RuntimeError(f"no {expected or 'pending'} decision to answer (have {kind})")
        self._pending = self._staged = None
        return kind, staged

    def _wait(self, kind: str, event: Event) -> Event:
        self._pending, self._staged = kind, event
        return event

    def _reply(self, reply: Reply) -> None:
        self._out.append(reply.to_bytes())
        if reply.code >= 500:
            self.errors += 1
            if self.errors >= self.options.max_errors and self._state != _CLOSED:
                self._close(
                    Reply(421, "4.7.0", f"{self.options.hostname} Too many errors"), "errors"
                )

    def _refuse(self, command: str, reply: Reply) -> None:
        self._events.append(Refused(command, reply))
        self._reply(reply)

    def _close(self, reply: Reply, reason: str) -> None:
        if self._state == _CLOSED:
            return
        self._out.append(reply.to_bytes())
        self._state = _CLOSED
        self._pending = self._staged = None
        self._in.clear()
        self._quit = Quit(reason)

    def _line(self, limit: int) -> bytes | None:
        """The next line without its ending (LF, optionally preceded by CR), None when not
        complete, or _SKIPPED after an over-long line was dropped (and answered)."""
        i = self._in.find(b"\n")
        if self._discarding:
            if i < 0:
                self._in.clear()
                return None
            del self._in[: i + 1]
            self._discarding = False
            self._refuse("line", LINE_TOO_LONG)
            return _SKIPPED
        if i < 0:
            if len(self._in) > limit:  # keep nothing of it: bounded memory
                self._in.clear()
                self._discarding = True
            return None
        if i + 1 > limit:
            del self._in[: i + 1]
            self._refuse("line", LINE_TOO_LONG)
            return _SKIPPED
        line = bytes(self._in[:i])
        del self._in[: i + 1]
        return line[:-1] if line.endswith(b"\r") else line

    # -- commands ------------------------------------------------------------------------
    def _command(self, raw: bytes) -> Event | None:
        verb_bytes, _, arg_bytes = raw.partition(b" ")
        verb = verb_bytes.decode("ascii", "replace").upper()
        if not verb.isascii() or not verb.isalpha():
            self._refuse(verb[:10] or "empty", UNKNOWN_COMMAND)
            return None
        if b"\r" in raw or b"\x00" in raw:
            self._refuse(verb, BAD_CHARS)
            return None
        try:
            arg = arg_bytes.decode("utf-8").strip(" ")
        except UnicodeDecodeError:
            self._refuse(verb, BAD_CHARS)
            return None
        handler = _HANDLERS.get(verb)
        if handler is None:
            if verb in _HTTP:  # a browser or a cross-protocol attack: not a mail client
                self._close(Reply(421, "4.7.0", f"{self.options.hostname} This is SMTP"), "http")
                return None
            reply = (
                Reply(502, "5.5.1", "Command not implemented")
                if verb in _NOT_IMPLEMENTED
                else UNKNOWN_COMMAND
            )
            self._refuse(verb, reply)
            return None
        return handler(self, verb, arg)

    def _junk(self) -> bool:
        """Count a command that moves no mail; False (and closing) when over the limit."""
        self.junk += 1
        if self.junk > self.options.max_junk:
            self._close(
                Reply(421, "4.7.0", f"{self.options.hostname} Too many commands without mail"),
                "junk",
            )
            return False
        return True

    def _hello(self, verb: str, arg: str) -> Event | None:
        if not self._junk():
            return None
        if not _HELO.fullmatch(arg):
            self._refuse(verb, Reply(501, "5.5.4", f"Syntax: {verb} hostname"))
            return None
        extended = verb == "EHLO"
        self.helo = arg
        self.esmtp = extended
        self.transaction = None  # RFC 5321 §4.1.4: EHLO/HELO resets like RSET
        host = sanitize(self.options.hostname)
        if not extended:
            self._out.append(f"250 {host}\r\n".encode())
        else:
            self._out.append(Reply(250, None, (host, *self._extensions())).to_bytes())
        return Hello(arg, extended)

    def _extensions(self) -> list[str]:
        o = self.options
        ext = ["PIPELINING", f"SIZE {o.max_size}", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        if o.starttls and not self.secure:
            ext.append("STARTTLS")
        if self.mechanisms:
            ext.append("AUTH " + " ".join(self.mechanisms))
        ext += ["CHUNKING", "DSN"]
        if self.secure:  # RFC 8689 §4: offered only on a TLS-protected session
            ext.append("REQUIRETLS")
        ext.append(f"LIMITS RCPTMAX={o.max_recipients}")  # RFC 9422 §4
        return ext

    def _mail(self, verb: str, arg: str) -> Event | None:
        if self.helo is None:
            self._refuse(verb, Reply(503, "5.5.1", "Send EHLO or HELO first"))
            return None
        if self.transaction is not None:
            self._refuse(verb, Reply(503, "5.5.1", "Nested MAIL command"))
            return None
        if self.options.auth_required and self.user is None:
            self._refuse(verb, AUTH_REQUIRED)  # RFC 4954 §6
            return None
        if arg[:5].upper() != "FROM:":
            self._refuse(verb, Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
            return None
        try:
            sender, rest = parse_path(arg[5:].lstrip(" "))
        except PathError as exc:
            self._refuse(verb, Reply(501, "5.1.7", f"Bad sender address {exc.kind}"))
            return None
        mail_params = self._params(verb, rest, esmtp.parse_mail)
        if mail_params is None:
            return None
        assert isinstance(mail_params, esmtp.MailParams)
        if sender is not None and not sender.ascii and not mail_params.smtputf8:
            # RFC 6531 §3.7.4.2
            self._refuse(verb, Reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"))
            return None
        if mail_params.size is not None and mail_params.size > self.options.max_size:
            self._refuse(verb, TOO_BIG)  # RFC 1870 §6.1
            return None
        if mail_params.requiretls and not self.secure:
            self._refuse(verb, Reply(530, "5.7.10", "REQUIRETLS needs a TLS session"))
            return None
        return self._wait("mail", Mail(sender, mail_params))

    def _params(self, verb: str, text: str, parse: Callable[[str], object]) -> object:
        if text.strip(" ") and not self.esmtp:
            self._refuse(verb, Reply(555, "5.5.4", "Parameters need EHLO"))
            return None
        try:
            return parse(text.rstrip(" "))
        except esmtp.ParamError as exc:
            self._refuse(verb, exc.reply)
            return None

    def _rcpt(self, verb: str, arg: str) -> Event | None:
        tx = self.transaction
        if tx is None:
            self._refuse(verb, Reply(503, "5.5.1", "Need MAIL before RCPT"))
            return None
        if arg[:3].upper() != "TO:":
            self._refuse(verb, Reply(501, "5.5.4", "Syntax: RCPT TO:<address>"))
            return None
        path = arg[3:].lstrip(" ")
        postmaster = _POSTMASTER.match(path)
        try:
            if postmaster:  # RFC 5321 §4.5.1: <Postmaster> without a domain
                recipient: Address | None = Address("postmaster", "")
                rest = path[postmaster.end() :]
            else:
                recipient, rest = parse_path(path)
        except PathError as exc:
            self._refuse(verb, Reply(501, "5.1.3", f"Bad recipient address {exc.kind}"))
            return None
        if recipient is None:
            self._refuse(verb, Reply(501, "5.1.3", "The null path is not a recipient"))
            return None
        rcpt_params = self._params(verb, rest, esmtp.parse_rcpt)
        if rcpt_params is None:
            return None
        assert isinstance(rcpt_params, esmtp.RcptParams)
        if not recipient.ascii and not tx.params.smtputf8:
            self._refuse(verb, Reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"))
            return None
        if len(tx.recipients) >= self.options.max_recipients:
            self._refuse(verb, TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10
            return None
        return self._wait("rcpt", Rcpt(recipient, rcpt_params, tx))

    def _not_ready_for_data(self) -> Reply | None:
        """RFC 5321 §3.3: no transaction is 503; no accepted recipient may be 554."""
        tx = self.transaction
        if tx is None:
            return Reply(503, "5.5.1", "Need MAIL and RCPT first")
        if not tx.recipients:
            return Reply(554, "5.5.1", "No valid recipients")
        return None

    def _data(self) -> Event | None:
        """Read body bytes until the end marker, then hand the message to the glue."""
        if self._reader is None:  # the DATA command itself was just accepted
            raise RuntimeError("DATA state without a reader")
        rest = self._reader.feed(bytes(self._in))
        self._in.clear()
        if rest is None:
            return NEED_DATA
        self._in += rest
        reader, self._reader = self._reader, None
        self._state = _COMMAND
        assert self.transaction is not None
        if reader.error is not None:
            self.transaction = None  # RFC 5321 §4.1.1.4: a failed DATA ends the transaction
            self._refuse("DATA", reader.error)
            return None
        return self._wait("data", Message(self.transaction, reader.data()))

    def _data_command(self, verb: str, arg: str) -> Event | None:
        if arg:
            self._refuse(verb, NO_ARGS)
            return None
        refusal = self._not_ready_for_data()
        if refusal is None and self.transaction is not None and self.transaction.chunked:
            refusal = Reply(503, "5.5.1", "DATA after BDAT in one transaction")
        if refusal is not None:
            self._refuse(verb, refusal)
            return None
        self._out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        self._reader = DotReader(self.options.max_size, self.options.max_data_line)
        self._state = _DATA
        return None

    def _bdat_command(self, verb: str, arg: str) -> Event | None:
        """RFC 3030 §2.  The chunk is read (and discarded when refused) in every case, so
        its bytes are never taken for commands; a size that does not parse leaves no way to
        find the next command, so the connection is closed."""
        match = _BDAT_ARGS.fullmatch(arg)
        if match is None:
            self._close(
                Reply(421, "4.5.4", f"{self.options.hostname} Syntax: BDAT octets [LAST]"),
                "bdat syntax",
            )
            return None
        size, last = int(match[1]), match[2] is not None
        self._bdat_left, self._bdat_last = size, last
        self._bdat_error = self._not_ready_for_data()  # answered once the chunk is read
        tx = self.transaction
        if self._bdat_error is None and tx is not None:
            tx.chunked = True
            if tx.chunked_size + size > self.options.max_size:
                self._bdat_error = TOO_BIG  # RFC 3030 §2 + RFC 1870: refuse, keep nothing
                tx.chunks.clear()
        self._state = _BDAT
        return None

    def _bdat(self) -> Event | None:
        take = min(self._bdat_left, len(self._in))
        if take:
            tx = self.transaction
            if self._bdat_error is None and tx is not None:
                tx.chunks.append(bytes(self._in[:take]))
                tx.chunked_size += take
            del self._in[:take]
            self._bdat_left -= take
        if self._bdat_left:
            return NEED_DATA
        self._state = _COMMAND
        error, self._bdat_error = self._bdat_error, None
        if error is not None:
            if error is TOO_BIG:
                self.transaction = None  # RFC 3030 §2: the transaction has failed
            self._refuse("BDAT", error)
            return None
        tx = self.transaction
        assert tx is not None
        if not self._bdat_last:
            self._reply(Reply(250, "2.0.0", f"{tx.chunked_size} octets received"))
            return None
        data = b"".join(tx.chunks)
        tx.chunks.clear()
        return self._wait("data", Message(tx, data))

    def _rset(self, verb: str, arg: str) -> Event | None:
        if not self._junk():
            return None
        if arg:
            self._refuse(verb, NO_ARGS)
            return None
        self.transaction = None
        self._reply(OK)
        return None

    def _noop(self, verb: str, arg: str) -> Event | None:
        if self._junk():
            self._reply(OK)  # RFC 5321 §4.1.1.9: the argument is ignored
        return None

    def _quit_command(self, verb: str, arg: str) -> Event | None:
        if arg:
            self._refuse(verb, NO_ARGS)
            return None
        self._close(BYE, "quit")
        return None

    def _vrfy(self, verb: str, arg: str) -> Event | None:
        if not self._junk():
            return None
        if not arg:
            self._refuse(verb, Reply(501, "5.5.4", "Syntax: VRFY address"))
            return None
        # RFC 5321 §3.5.3: 252 says nothing about whether the user exists.
        self._reply(
            Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
        )
        return None

    def _help(self, verb: str, arg: str) -> Event | None:
        if self._junk():
            self._reply(
                Reply(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
                    "VRFY HELP STARTTLS AUTH",
                )
            )
        return None

    def _starttls(self, verb: str, arg: str) -> Event | None:
        if arg:
            self._refuse(verb, Reply(501, "5.5.4", "Syntax error (no parameters allowed)"))
            return None
        if self.secure:
            self._refuse(verb, Reply(503, "5.5.1", "TLS already active"))
            return None
        if not self.options.starttls:
            self._refuse(verb, Reply(454, "4.7.0", "TLS not available"))
            return None
        if self.helo is None or not self.esmtp:
            self._refuse(verb, Reply(503, "5.5.1", "Send EHLO first"))
            return None
        self._reply(TLS_READY)
        self._state = _WAIT
        return self._wait("tls", StartTLS())

    def _auth(self, verb: str, arg: str) -> Event | None:
        if self.helo is None or not self.esmtp:
            self._refuse(verb, Reply(503, "5.5.1", "Send EHLO first"))
            return None
        if self.user is not None:
            self._refuse(verb, Reply(503, "5.5.1", "Already authenticated"))  # RFC 4954 §4
            return None
        if self.transaction is not None:
            self._refuse(verb, Reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
            return None
        name, _, initial_text = arg.partition(" ")
        mechanism = name.upper()
        if not _MECHANISM.fullmatch(mechanism.encode()) or " " in initial_text.strip(" "):
            self._refuse(verb, Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
            return None
        if mechanism not in self.mechanisms:
            if not self.mechanisms and not self.secure:  # RFC 4954 §6
                reply = Reply(
                    538, "5.7.11", "Encryption required for requested authentication mechanism"
                )
            else:
                reply = Reply(504, "5.5.4", "Unrecognized authentication type")
            self._refuse(verb, reply)
            return None
        initial: bytes | None = None
        initial_text = initial_text.strip(" ")
        if initial_text:
            initial = b"" if initial_text == "=" else _b64(initial_text.encode())
            if initial is None:
                self._refuse(verb, Reply(501, "5.5.2", "Invalid base64 data"))
                return None
        return self._wait("auth", AuthStart(mechanism, initial))

    def _sasl_line(self, line: bytes) -> Event | None:
        if line.strip() == b"*":  # RFC 4954 §4: the client cancels
            self._state = _COMMAND
            self._events.append(AuthCancelled())
            self._reply(AUTH_CANCELLED)
            return None
        data = _b64(line.strip())
        if data is None:
            self._state = _COMMAND
            self._events.append(AuthCancelled())
            self._refuse("AUTH", Reply(501, "5.5.2", "Invalid base64 data"))
            return None
        return self._wait("auth", AuthResponse(data))


def _b64(text: bytes) -> bytes | None:
    try:
        return binascii.a2b_base64(text, strict_mode=True) if text else b""
    except (binascii.Error, ValueError):
        return None


_HANDLERS = {
    "EHLO": ServerCore._hello,
    "HELO": ServerCore._hello,
    "MAIL": ServerCore._mail,
    "RCPT": ServerCore._rcpt,
    "DATA": ServerCore._data_command,
    "BDAT": ServerCore._bdat_command,
    "RSET": ServerCore._rset,
    "NOOP": ServerCore._noop,
    "QUIT": ServerCore._quit_command,
    "VRFY": ServerCore._vrfy,
    "HELP": ServerCore._help,
    "STARTTLS": ServerCore._starttls,
    "AUTH": ServerCore._auth,
}
_NOT_IMPLEMENTED = frozenset({"EXPN", "SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN"})
_HTTP = frozenset({"GET", "POST", "PUT", "HEAD", "CONNECT", "OPTIONS", "DELETE"})
