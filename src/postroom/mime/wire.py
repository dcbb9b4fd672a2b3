"""IMAP string forms used inside ENVELOPE and BODYSTRUCTURE (RFC 9051 §4.3, §9 `nstring`).

A value is sent as a quoted string when it can be (7-bit, no CR/LF), otherwise as a literal that
carries the raw bytes unchanged (8-bit header text stays as the sender wrote it).
"""

from __future__ import annotations

NIL = b"NIL"


def string(value: bytes) -> bytes:
    """Quoted string or literal for ``value``; NUL is dropped (RFC 9051 §4.3: CHAR8 excludes %x00)."""
    if b"\0" in value:
        value = value.replace(b"\0", b"")
    if value.isascii() and b"\r" not in value and b"\n" not in value:
        if b"\\" in value or b'"' in value:
            # RFC 9051 §9: quoted-specials are escaped inside a quoted string
            value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + value + b'"'
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | None) -> bytes:
    """``NIL`` for an absent value, else :func:`string`."""
    return NIL if value is None else string(value)
