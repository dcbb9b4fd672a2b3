"""Decoding header text to str for the index: charsets and RFC 2047 encoded-words.

Bound enforced here: at most :data:`MAX_DECODE` bytes of one header value are decoded (the stored
message keeps every byte). Only text codecs are used: bytes-to-bytes codecs (zlib, base64) can
never be named by a message, and codecs whose decoding cost is not linear (punycode, idna) or
that interpret escapes (unicode-escape) are refused.
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

from postroom.mime.transfer import base64

MAX_DECODE = 64 * 1024

_REFUSED = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined"})

# RFC 2047 §2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?=", with the
# RFC 2231 §5 "*language" suffix on the charset.
_WORD = re.compile(rb"=\?([^?*\s]{1,64})(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")


@lru_cache(maxsize=256)
def codec(charset: str) -> str | None:
    """Python codec name for a MIME charset, or None when unknown or refused."""
    name = charset.strip().strip('"').lower()
    if not name or len(name) > 64:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


def clean(text: str) -> str:
    """Replace lone surrogates (some codecs produce them) so the text can always be UTF-8."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_raw(raw: bytes) -> str:
    """Undeclared bytes: UTF-8 (RFC 6532) when valid, else Windows-1252, the usual legacy."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def decode_charset(raw: bytes, charset: str | None) -> str:
    """``raw`` in ``charset``; unknown charsets fall back to :func:`decode_raw`."""
    name = codec(charset) if charset else None
    if name is not None:
        try:
            return clean(raw.decode(name, "replace"))
        except (UnicodeError, LookupError, ValueError, TypeError):
            pass
    return decode_raw(raw)


def decode_header(raw: bytes) -> str:
    """Decoded text of one unfolded header value (RFC 2047 §6), bounded by MAX_DECODE."""
    raw = raw[:MAX_DECODE]
    if b"=?" not in raw:
        return decode_raw(raw)
    out: list[str] = []
    pending_charset = ""
    pending = bytearray()
    pos = 0
    after_word = False
    for m in _WORD.finditer(raw):
        gap = raw[pos : m.start()]
        # RFC 2047 §6.2: linear whitespace between adjacent encoded-words is ignored
        if gap and not (after_word and not gap.strip(b" \t")):
            if pending:
                out.append(decode_charset(bytes(pending), pending_charset))
                pending.clear()
            out.append(decode_raw(gap))
        charset = m.group(1).decode("ascii", "replace").lower()
        text = m.group(3)
        try:
            payload = base64(text) if m.group(2) in b"bB" else binascii.a2b_qp(text, header=True)
        except (binascii.Error, ValueError):
            payload = text
        if charset != pending_charset and pending:
            out.append(decode_charset(bytes(pending), pending_charset))
            pending.clear()
        # Consecutive words in one charset are joined before decoding: senders split
        # multibyte characters across words.
        pending_charset = charset
        pending += payload
        pos = m.end()
        after_word = True
    if pending:
        out.append(decode_charset(bytes(pending), pending_charset))
    if pos < len(raw):
        out.append(decode_raw(raw[pos:]))
    return "".join(out)
