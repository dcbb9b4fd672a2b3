"""POP3 multi-line responses (RFC 1939 §3): CRLF line endings, dot-stuffing, "." terminator.

Stored messages are sent as stored, except that every line ends in CRLF whatever the
message used (a bare LF becomes CRLF; a lone CR inside a line is data and stays), so that the
terminating CRLF.CRLF can never appear inside a message.  Everything here is done with
``bytes.replace``/``find``, which runs in C: a 25 MiB message costs a few copies, not a
Python loop over its lines.
"""

from __future__ import annotations

from collections.abc import Iterable

TERMINATOR = b".\r\n"


def multiline(first: str, lines: Iterable[str]) -> bytes:
    """ "+OK first" then each line (ASCII protocol text, never starting with a dot) and the
    terminator."""
    parts = [f"+OK {first}\r\n".encode()]
    parts.extend(f"{line}\r\n".encode() for line in lines)
    parts.append(TERMINATOR)
    return b"".join(parts)


def normalise(data: bytes) -> bytes:
    """Every line ending becomes CRLF (a bare LF gets its CR; CRLF stays CRLF)."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data  # the common case: already CRLF throughout
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\n", b"\r\n")


def top_part(data: bytes, body_lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line after it and at most ``body_lines``
    lines of the body (the whole message when it has fewer).  ``data`` is normalised."""
    if data.startswith(b"\r\n"):
        body_start = 2  # no header fields at all
    else:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return data  # no body: the whole message is header
        body_start = end + 4
    pos = body_start
    for _ in range(body_lines):
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            return data
        pos = nl + 2
    return data[:pos]


def stuffed(data: bytes) -> bytes:
    """A normalised message as a multi-line body: a final CRLF, dot-stuffed (RFC 1939 §3:
    a line starting with "." gets one more), and the terminator."""
    return b"".join(_stuffed_parts(data))


def _stuffed_parts(data: bytes) -> list[bytes]:
    """``stuffed`` in pieces, so that a reply joins them to its status line in one copy."""
    parts = [b"."] if data.startswith(b".") else []
    parts.append(data.replace(b"\r\n.", b"\r\n.."))  # no copy when nothing to stuff
    parts.append(TERMINATOR if not data or data.endswith(b"\r\n") else b"\r\n" + TERMINATOR)
    return parts


def message_reply(data: bytes, body_lines: int | None = None) -> bytes:
    """The whole answer to RETR (``body_lines`` None) or TOP, built with one copy of the
    message."""
    data = normalise(data)
    if body_lines is None:
        return b"".join([b"+OK %d octets\r\n" % len(data), *_stuffed_parts(data)])
    return b"".join(
        [b"+OK top of message follows\r\n", *_stuffed_parts(top_part(data, body_lines))]
    )
