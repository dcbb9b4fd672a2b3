"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), used with IMAP4rev1 clients that have not
enabled UTF8=ACCEPT (RFC 6855) or IMAP4rev2 (RFC 9051 §5.1)."""

from __future__ import annotations

import base64


class Utf7Error(ValueError):
    """The name is not valid modified UTF-7."""


def encode(name: str) -> str:
    """UTF-8 text -> modified UTF-7: printable ASCII stays, "&" becomes "&-", runs of other
    characters become "&" + modified base64 of UTF-16BE + "-"."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Modified UTF-7 -> text; raises Utf7Error on malformed or non-canonical input."""
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise Utf7Error("8-bit or control character in a modified UTF-7 name")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated base64 run")
        chunk = name[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if any(c not in _B64 for c in chunk):
            raise Utf7Error("bad character in base64 run")
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            text = raw.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            raise Utf7Error("bad base64 run") from None
        if len(raw) % 2 or any(0x20 <= ord(c) <= 0x7E for c in text):
            # RFC 3501 §5.1.3: printable US-ASCII MUST represent itself.
            raise Utf7Error("non-canonical base64 run")
        out.append(text)
    return "".join(out)


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
