"""Content-Transfer-Encoding decoding (RFC 2045 §6), lenient as receivers must be (§6.8)."""

from __future__ import annotations

import binascii

IDENTITY = frozenset({"", "7bit", "8bit", "binary"})

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(c for c in range(256) if c not in _B64_ALPHABET)


def base64(raw: bytes) -> bytes:
    """RFC 2045 §6.8: characters outside the alphabet are ignored; a ragged end is tolerated."""
    s = raw.translate(None, _B64_DELETE)
    rest = len(s) % 4
    if rest == 1:
        s = s[:-1]
    elif rest:
        s += b"=" * (4 - rest)
    return binascii.a2b_base64(s)


def decode(raw: bytes, encoding: str) -> bytes | None:
    """Decoded bytes, or None for an encoding this server does not know (RFC 3516 UNKNOWN-CTE)."""
    if encoding in IDENTITY:
        return raw
    if encoding == "base64":
        return base64(raw)
    if encoding == "quoted-printable":
        # RFC 2045 §6.7
        return binascii.a2b_qp(raw)
    return None
