"""The DATA body reader: end detection, dot-unstuffing and limits, streaming (RFC 5321 §4.1.1.4).

Smuggling defence: only <CRLF>.<CRLF> ends the body, where the first CRLF ends a line that
started after another CRLF (or at the start of DATA).  Lines are split at CRLF only.  Inside a
line, a bare LF is normalised to CRLF (as Postfix 3.9's default "normalize" does: such mail is
common from broken software and the stored message must be RFC 5322 text); a bare CR has no
legitimate use and rejects the message with 554 5.5.2.  Neither can end or split a message, so
"\\n.\\n", "\\r.\\r", "\\n.\\r\\n" and "\\r\\n.\\n" inside a body stay body text: a second MAIL FROM
after them is never read as a command.

Bounds: bytes beyond ``max_size`` are counted and dropped, not buffered (the message then gets
552 5.3.4 once the end is seen); a line longer than ``max_line`` octets is kept intact when
shorter, and otherwise rejects the message with 554 5.6.0 (never silently truncated).
"""

from __future__ import annotations

import re

from postroom.smtp.reply import TOO_BIG, Reply

BARE_CR = Reply(554, "5.5.2", "Bare CR in message data is not allowed, use CRLF")

_BARE_LF = re.compile(rb"(?<!\r)\n")
_TAIL = 4  # bytes of an over-long line kept to find an end marker straddling two reads


def long_line(limit: int) -> Reply:
    return Reply(554, "5.6.0", f"Message has a line longer than {limit} octets")


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
        if not self._overlong and buf[:3] == b".\r\n":
            end, rest = 0, 3
        else:
            i = buf.find(b"\r\n.\r\n")
            end, rest = (i + 2, i + 5) if i >= 0 else (-1, -1)
        if end >= 0:
            self._take(buf[:end])
            self._carry = b""
            return buf[rest:]
        last = buf.rfind(b"\r\n")
        if last >= 0:
            self._take(buf[: last + 2])
            self._overlong = False
            buf = buf[last + 2 :]
        if len(buf) > self.max_line:
            self._fail(long_line(self.max_line))
            self._overlong = True
            buf = buf[-_TAIL:]
        self._carry = buf
        return None

    def _take(self, region: bytes) -> None:
        """Process complete lines; ``region`` starts at a line start and ends with CRLF."""
        if self.error is not None or not region:
            return
        if region[:1] == b".":
            region = region[1:]
        region = region.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2 dot-unstuffing
        crlf = region.count(b"\r\n")
        if region.count(b"\r") != crlf:
            self._fail(BARE_CR)
            return
        if region.count(b"\n") != crlf:
            region = _BARE_LF.sub(b"\r\n", region)
        if len(region) > self.max_line and max(map(len, region.split(b"\r\n"))) > self.max_line:
            self._fail(long_line(self.max_line))
            return
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
