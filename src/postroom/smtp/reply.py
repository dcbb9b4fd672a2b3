"""SMTP replies: a code, an enhanced status code (RFC 3463) and text, serialised safely.

Reply text never carries raw client input.  ``to_bytes`` still strips anything that could end
a line or confuse a client (CR, LF, NUL, other controls), so a bug elsewhere cannot turn into
reply injection.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def sanitize(text: str, limit: int = 400) -> str:
    """One safe line: control characters become "?", length bounded."""
    return _UNSAFE.sub("?", text)[:limit]


@dataclass(frozen=True, slots=True)
class Reply:
    """``code`` is the 3-digit reply code (RFC 5321 §4.2); ``status`` the enhanced code
    (RFC 2034), None only where RFC 2034 §3 exempts it (greeting, HELO/EHLO, 334, 354)."""

    code: int
    status: str | None
    text: str | tuple[str, ...]

    @property
    def positive(self) -> bool:
        """2xx and 3xx: the command was accepted (RFC 5321 §4.2.1)."""
        return self.code < 400

    @property
    def lines(self) -> tuple[str, ...]:
        return self.text if isinstance(self.text, tuple) else (self.text,)

    def to_bytes(self) -> bytes:
        """Multiline replies use "code-" on every line but the last (RFC 5321 §4.2.1)."""
        return _serialized(self)

    def __str__(self) -> str:
        return f"{self.code} {self.status or ''} {' / '.join(self.lines)}".replace("  ", " ")


@functools.lru_cache(maxsize=512)
def _serialized(reply: Reply) -> bytes:
    """Most replies are the same few (the greeting, the EHLO list, "250 2.1.0 Sender ok"),
    serialised once rather than for every session and command."""
    lines = reply.lines or ("",)
    prefix = f"{reply.status} " if reply.status else ""
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{reply.code}{sep}{prefix}{sanitize(line)}".rstrip(" ") + "\r\n")
    return "".join(out).encode("utf-8")


# The replies the core and the glue share, named once so tests and code agree on codes.
OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Sender ok")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient ok")
BYE = Reply(221, "2.0.0", "Bye")
TLS_READY = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure, try again later")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
UNKNOWN_USER = Reply(550, "5.1.1", "No such user here")
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
NOT_OWNER = Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
OVER_QUOTA = Reply(452, "4.2.2", "Mailbox full")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")
LOOP = Reply(550, "5.4.6", "Alias loop or expansion too deep")
TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many Received header fields, mail loop?")
