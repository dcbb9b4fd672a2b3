"""Command framing: cuts the byte stream into commands made of lines and literals, and
enforces every size bound *before* reading the bytes it refuses (DESIGN principle 7).

A command is one or more lines; a line ending in ``{n}`` (synchronising), ``{n+}``
(non-synchronising, RFC 7888) or ``~{n}`` (literal8, RFC 3516) is followed by exactly n bytes
of literal and then the rest of the command.  For a synchronising literal the framer asks the
glue to send a continuation request (``+``) — or refuses the command instead, so the client
never sends the bytes.  A refused non-synchronising literal is already on its way: its bytes
are discarded by count (never parsed as commands), or the connection is closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.imap import response

# A literal announcement at the very end of a line (RFC 9051 §4.3, RFC 7888 §3).
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)(\+?)\}\Z")
_TAG_CHARS = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\+')
_MAX_DIGITS = 12  # larger counts are refused as too large, never parsed into huge ints
_TAIL = 32  # bytes of a discarded line kept to spot a literal announced at its end


@dataclass(frozen=True, slots=True)
class FrameLimits:
    line: int  # octets of one line, CRLF excluded
    literal: int  # octets of one literal outside APPEND
    append: int  # octets of one literal in APPEND (the message size limit)
    command: int  # octets of one command, an APPEND message literal excluded
    nonsync: int | None  # LITERAL- (RFC 7888 §4): largest non-synchronising literal
    close_on_refusal: bool  # refused bytes in flight close the connection (before login)


# Before authentication every bound is tiny: an anonymous peer cannot make us buffer much.
PRE_AUTH = FrameLimits(
    line=8192, literal=8192, append=8192, command=16384, nonsync=4096, close_on_refusal=True
)


def post_auth(message_size: int) -> FrameLimits:
    """Bounds after login: 64 KiB lines and literals, APPEND up to the message size limit."""
    return FrameLimits(
        line=65536,
        literal=65536,
        append=message_size,
        command=256 * 1024,
        nonsync=None,
        close_on_refusal=False,
    )


@dataclass(slots=True)
class Command:
    """A complete command: ``lines[i]`` ends with the announcement of ``literals[i]``."""

    lines: list[bytes]
    literals: list[bytes]


@dataclass(slots=True)
class Line:
    """A bare line the glue asked for (SASL response, IDLE's DONE)."""

    data: bytes


@dataclass(slots=True)
class Continue:
    """The client waits for ``+`` before sending a synchronising literal."""


@dataclass(slots=True)
class Refused:
    """Send ``response``; when ``close`` is set the connection must end after it."""

    tag: str | None
    response: bytes
    close: bool


Event = Command | Line | Continue | Refused

_LINE, _LITERAL, _DISCARD_LINE, _DISCARD_BYTES = range(4)


def extract_tag(line: bytes) -> str | None:
    """The tag of a command line, or None when it is missing or malformed (RFC 9051 §9 tag)."""
    tag = line.split(b" ", 1)[0]
    if not tag or len(tag) > 64 or any(b not in _TAG_CHARS for b in tag):
        return None
    return tag.decode("ascii")


class Framer:
    def __init__(self, limits: FrameLimits = PRE_AUTH) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._scan = 0
        self._mode = _LINE
        self._want_line = False
        self._lines: list[bytes] = []
        self._literals: list[bytes] = []
        self._size = 0
        self._append = False
        self._lit = bytearray()
        self._left = 0
        self._tail = b""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        """Forget everything buffered (STARTTLS: RFC 9051 §6.2.1, pipelined plaintext must
        not survive the handshake)."""
        self._buf.clear()
        self._scan = 0
        self._mode = _LINE
        self._want_line = False
        self._reset_command()

    def take_buffered(self) -> bytes:
        """Remove and return the unread bytes; only meaningful between commands."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return data

    def expect_line(self) -> None:
        """Deliver the next line as a bare Line (no literal processing)."""
        self._want_line = True

    def _reset_command(self) -> None:
        self._lines = []
        self._literals = []
        self._size = 0
        self._append = False
        self._lit = bytearray()

    def next_event(self) -> Event | None:
        """The next event from the buffered bytes, or None when more bytes are needed."""
        buf = self._buf
        while True:
            mode = self._mode
            if mode == _LITERAL:
                take = min(len(buf), self._left)
                if take:
                    self._lit += buf[:take]
                    del buf[:take]
                    self._left -= take
                if self._left:
                    return None
                self._literals.append(bytes(self._lit))
                self._lit = bytearray()
                self._mode = _LINE
                continue
            if mode == _DISCARD_BYTES:
                take = min(len(buf), self._left)
                del buf[:take]
                self._left -= take
                if self._left:
                    return None
                self._mode = _DISCARD_LINE
                self._tail = b""
                continue
            if mode == _DISCARD_LINE:
                idx = buf.find(b"\n")
                if idx < 0:
                    self._tail = (self._tail + bytes(buf[-_TAIL:]))[-_TAIL:]
                    buf.clear()
                    return None
                end = (self._tail + bytes(buf[max(0, idx - _TAIL) : idx]))[-_TAIL:]
                del buf[: idx + 1]
                self._after_discarded(end)
                continue
            idx = buf.find(b"\n", self._scan)
            if idx < 0:
                if len(buf) > self.limits.line:
                    return self._overflow()
                self._scan = len(buf)
                return None
            self._scan = 0
            line = bytes(buf[:idx])
            del buf[: idx + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.limits.line:
                refused = self._refuse_line(line)
                self._after_discarded(line[-_TAIL:])
                return refused
            if self._want_line:
                self._want_line = False
                return Line(line)
            event = self._line(line)
            if event is not None:
                return event

    # -- a complete line of a command -----------------------------------------------------
    def _line(self, line: bytes) -> Event | None:
        limits = self.limits
        first = not self._lines
        self._size += len(line) + 2
        if first:
            words = line.split(b" ", 2)
            self._append = len(words) > 1 and words[1].upper() == b"APPEND"
        budget = limits.command + (limits.append if self._append else 0)
        m = _LITERAL_AT_END.search(line)
        if m is None:
            if self._size > budget:
                return self._refuse_literal(line, "BAD", "Command too large", nonsync=False)
            event = Command(self._lines + [line], self._literals)
            self._reset_command()
            return event
        digits, nonsync = m.group(1), bool(m.group(2))
        count = int(digits) if len(digits) <= _MAX_DIGITS else 1 << 62
        if self._append and count > limits.append:
            # RFC 7889 §4: a message over the size limit is answered NO [TOOBIG].
            return self._refuse_literal(line, "NO", "Message too large", nonsync)
        if not self._append and count > limits.literal:
            return self._refuse_literal(line, "BAD", "Literal too large", nonsync)
        if nonsync and limits.nonsync is not None and count > limits.nonsync:
            # RFC 7888 §4: LITERAL- allows non-synchronising literals of 4096 octets at most.
            return self._refuse_literal(line, "BAD", "Non-synchronizing literal too large", True)
        if self._size + count > budget:
            return self._refuse_literal(line, "BAD", "Command too large", nonsync)
        self._lines.append(line)
        self._size += count
        self._left = count
        self._mode = _LITERAL
        return None if nonsync else Continue()

    def _tag(self, line: bytes) -> str | None:
        return extract_tag(self._lines[0] if self._lines else line)

    def _refuse_literal(self, line: bytes, status: str, message: str, nonsync: bool) -> Refused:
        """Refuse a command whose literal (or size) is over a bound.  A synchronising
        literal was never sent, so the stream stays in step; the bytes of a non-synchronising
        one are discarded by count, or the connection is closed before login."""
        tag = self._tag(line)
        self._reset_command()
        close = False
        if nonsync:
            close = self.limits.close_on_refusal
            m = _LITERAL_AT_END.search(line)
            if m is not None and len(m.group(1)) > _MAX_DIGITS:
                close = True
            elif m is not None:
                self._left = int(m.group(1))
                self._mode = _DISCARD_BYTES
        return self._refusal(tag, status, message, close)

    def _refusal(self, tag: str | None, status: str, message: str, close: bool) -> Refused:
        out = response.tagged(tag, status, message, "TOOBIG")
        if close:
            out += response.untagged(b"BYE Too much data before authentication")
        return Refused(tag, out, close)

    # -- lines over the bound ------------------------------------------------------------
    def _overflow(self) -> Refused:
        """No line end within the bound: answer now, then skip the rest of the line."""
        buf = self._buf
        self._tail = bytes(buf[-_TAIL:])
        refused = self._refuse_line(bytes(buf[:80]))
        buf.clear()
        self._scan = 0
        self._mode = _DISCARD_LINE
        return refused

    def _refuse_line(self, head: bytes) -> Refused:
        tag = None if self._want_line else self._tag(head)
        close = self.limits.close_on_refusal or self._want_line
        self._want_line = False
        self._reset_command()
        return self._refusal(tag, "BAD", "Line too long", close)

    def _after_discarded(self, end: bytes) -> None:
        """A discarded line ended; if it announced a non-synchronising literal, the literal's
        bytes follow and are discarded too (they are data, never commands)."""
        if end.endswith(b"\r"):
            end = end[:-1]
        m = _LITERAL_AT_END.search(end)
        if m is not None and m.group(2):
            self._left = int(m.group(1)) if len(m.group(1)) <= _MAX_DIGITS else 1 << 62
            self._mode = _DISCARD_BYTES
        else:
            self._mode = _LINE
