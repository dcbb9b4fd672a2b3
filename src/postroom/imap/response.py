"""Response formatting (RFC 9051 §4, §7): strings are sent as atoms, quoted strings or
literals as their content requires, and nothing a client sent is ever echoed with a raw CR,
LF or NUL (RFC 9051 §4.3: quoted strings cannot carry them; resp-text is TEXT-CHAR only)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

CRLF = b"\r\n"

# RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7F}
_QUOTED_OK = frozenset(range(0x20, 0x7F))  # 7-bit printable: quoted strings stay portable
_TEXT_TABLE = bytes(0x20 if b in (0x00, 0x0A, 0x0D) else b for b in range(256))


def _is_atom(data: bytes) -> bool:
    return bool(data) and not any(b in _ATOM_SPECIALS or b > 0x7E for b in data)


def string(value: str | bytes) -> bytes:
    """A quoted string when 7-bit printable, else a literal (RFC 9051 §4.3)."""
    data = value.encode() if isinstance(value, str) else value
    if 0 in data:  # CHAR8 excludes NUL (RFC 9051 §9): a string can never carry one
        data = data.replace(b"\0", b"")
    if all(b in _QUOTED_OK for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def astring(value: str | bytes) -> bytes:
    """An atom when possible (mailbox names, flags), else a string."""
    data = value.encode() if isinstance(value, str) else value
    if _is_atom(data) and data.upper() != b"NIL":
        return data
    return string(data)


def text(value: str | bytes) -> bytes:
    """Human-readable resp-text: CR, LF and NUL become spaces, so a client-supplied name
    quoted in an error message can never end the line or inject a response."""
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    return data.translate(_TEXT_TABLE)


def tag_bytes(tag: str | None) -> bytes:
    return b"*" if not tag else tag.encode("ascii")


def tagged(tag: str | None, status: str, message: str, code: str | bytes | None = None) -> bytes:
    """``tag OK [CODE] text``; an unknown tag (unparsable command) answers with ``*``."""
    head = tag_bytes(tag) + b" " + status.encode() + b" "
    if code:
        head += b"[" + (code.encode() if isinstance(code, str) else code) + b"] "
    return head + text(message) + CRLF


def untagged(data: str | bytes) -> bytes:
    return b"* " + (data.encode() if isinstance(data, str) else data) + CRLF


def ok(message: str, code: str | bytes | None = None) -> bytes:
    """``* OK [CODE] text``."""
    return tagged(None, "OK", message, code)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode() + b")"


def number_set(numbers: Sequence[int]) -> bytes:
    """Ascending numbers as a compact sequence set, ``1:3,7,9:10`` (RFC 9051 §9 sequence-set)."""
    parts: list[bytes] = []
    i = 0
    n = len(numbers)
    while i < n:
        start = numbers[i]
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(b"%d" % start if j == i else b"%d:%d" % (start, numbers[j]))
        i = j + 1
    return b",".join(parts)


def uid_list(uids: Sequence[int]) -> bytes:
    """A uid-set keeping the given order (COPYUID pairs, MULTIAPPEND's APPENDUID, RFC 4315
    §3): compressed into ranges only when ascending."""
    if all(a < b for a, b in zip(uids, uids[1:], strict=False)):
        return number_set(uids)
    return b",".join(b"%d" % u for u in uids)


def paren(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_time(epoch: float) -> bytes:
    """INTERNALDATE as ``"17-Jul-1996 09:44:25 +0000"`` (RFC 9051 §9 date-time), in UTC."""
    t = time.gmtime(epoch)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )
