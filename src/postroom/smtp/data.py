"""The DATA body reader: end detection, dot-unstuffing and limits, streaming (RFC 5321 §4.1.1.4).

Smuggling defence: only <CRLF>.<CRLF> ends the body, where the first CRLF ends a line that
started after another CRLF (or at the start of DATA).  Lines are split at CRLF only.  Inside a
line, a bare LF is normalised to CRLF (as Postfix 3.9's default "normalize" does: such mail is
common from broken software and the stored message must be RFC 5322 text); a bare CR has no
legitimate use and rejects the message with 554 5.5.2.  Neither can end or split a message, so
"\\n.\\n", "\\r.\\r", "\\n.\\r\\n" and "\\r\\n.\\n" inside a body stay body text: a second MAIL FROM
after them is never read as a command.

Bounds: bytes beyond ``max_size`` are counted and dropped, not buffered (the message then gets
552 5.3.4 once the end is seen); a line longer than ``max_line`` octets (between CRLFs, not
counting a stuffing dot, RFC 5321 §4.5.3.1.6) rejects the message with 554 5.6.0, and any line
up to it is kept intact (never silently truncated).
"""

from __future__ import annotations

import re

from postroom.smtp.reply import TOO_BIG, Reply

BARE_CR = Reply(554, "5.5.2", "Bare CR in message data is not allowed, use CRLF")

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r[^\n]")
_TAIL = 4  # bytes of an over-long line kept to find an end marker straddling two reads
_NOT_CR_LF = bytes(b for b in range(256) if b not in b"\r\n")


def long_line(limit: int) -> Reply:
    return Reply(554, "5.6.0", f"Message has a line longer than {limit} octets")


def _longest_line(region: bytes, limit: int) -> int:
    """The longest line (between CRLFs) of ``region`` when it may exceed ``limit``, else 0.
    A line over ``limit`` covers a whole aligned block of ``limit // 2`` bytes without an LF,
    so a few block searches rule out the split into lines for almost every message."""
    step = max(limit // 2, 1)
    for at in range(0, len(region) - step + 1, step):
        if region.find(b"\n", at, at + step) < 0:
            return max(map(len, region.split(b"\r\n")))
    return 0


class DotReader:
    """Feed raw bytes after the 354 reply; ``feed`` returns the bytes that follow the end
    marker (pipelined commands) once the end is found, None while more is needed."""

    def __init__(self, max_size: int, max_line: int) -> None:
        self.max_size = max_size
        self.max_line = max_line
        self.size = 0
        self.error: Reply | None = None
        self._parts: list[bytes] = []
        self._carry = b""  # the unfinished line, from its start (or a tail when over-long)
        self._overlong = False  # _carry is the tail of an over-long line, not a line start

    def feed(self, chunk: bytes) -> bytes | None:
        buf = self._carry + chunk if self._carry else chunk
        end, rest, stuffed = self._scan(buf)
        if end >= 0:
            self._take(buf[:end], 0 <= stuffed <= end - 3)
            self._carry = b""
            return buf[rest:]
        last = buf.rfind(b"\r\n")
        if last >= 0:
            self._take(buf[: last + 2], 0 <= stuffed <= last - 1)
            self._overlong = False
            buf = buf[last + 2 :]
        if len(buf) > self.max_line + 2:  # a stuffing dot, and the CR of a CRLF on its way
            self._fail(long_line(self.max_line))
            self._overlong = True
            buf = buf[-_TAIL:]
        self._carry = buf
        return None

    def _scan(self, buf: bytes) -> tuple[int, int, int]:
        """(end of the body, start of what follows, first dot-stuffed line) in ``buf``, each
        -1 when absent.  One search for CRLF "." finds both the end marker and stuffing."""
        if not self._overlong and buf[:3] == b".\r\n":
            return 0, 3, -1
        # Collected backwards: CPython's rfind is about twice as fast as find for this
        # needle, and most buffers hold no match (the occurrences cannot overlap).
        found = []
        i = buf.rfind(b"\r\n.")
        while i >= 0:
            found.append(i)
            i = buf.rfind(b"\r\n.", 0, i)
        stuffed = -1
        for i in reversed(found):
            if buf[i + 3 : i + 5] == b"\r\n":
                return i + 2, i + 5, stuffed
            if stuffed < 0:
                stuffed = i
        return -1, -1, stuffed

    def _take(self, region: bytes, stuffed: bool) -> None:
        """Process complete lines; ``region`` starts at a line start and ends with CRLF;
        ``stuffed``: a line after its first starts with a dot."""
        if self.error is not None or not region:
            return
        if region[:1] == b".":
            region = region[1:]
        if stuffed:
            region = region.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2 dot-unstuffing
        # region ends with CRLF, so a bare CR is one followed by another byte than LF; with
        # none, every CR starts a CRLF and the LFs beyond the CRs' count are bare.
        if _BARE_CR.search(region):
            self._fail(BARE_CR)
            return
        breaks = region.translate(None, _NOT_CR_LF)  # every CR and LF, in order
        bare_lf = len(breaks) != 2 * breaks.count(b"\r")
        if len(region) > self.max_line and _longest_line(region, self.max_line) > self.max_line:
            self._fail(long_line(self.max_line))
            return
        if bare_lf:
            region = _BARE_LF.sub(b"\r\n", region)
        self.size += len(region)
        if self.size > self.max_size:
            self._fail(TOO_BIG)
            return
        self._parts.append(region)

    def _fail(self, reply: Reply) -> None:
        if self.error is None:
            self.error = reply
        self._parts.clear()  # the message is refused: keep nothing

    def data(self) -> bytes:
        return b"".join(self._parts)
