"""Mailbox names on the wire (RFC 9051 §5.1): modified UTF-7 for IMAP4rev1 clients, UTF-8
once IMAP4rev2 or UTF8=ACCEPT (RFC 6855 §3) is enabled; hierarchy separator "/"; INBOX
case-insensitive (RFC 9051 §5.1); LIST wildcards (RFC 9051 §6.3.9)."""

from __future__ import annotations

import re

from postroom.imap import response, utf7

SEP = "/"
MAX_NAME = 1024  # characters
MAX_DEPTH = 64  # hierarchy levels


class NameError_(ValueError):  # noqa: N801 - NameError is a builtin
    """The client's mailbox name is not valid."""


def normalise_inbox(name: str) -> str:
    """``inbox`` and ``Inbox/x`` name INBOX and its children (RFC 9051 §5.1)."""
    head = name[:5]
    if head.upper() == "INBOX" and (len(name) == 5 or name[5] == SEP):
        return "INBOX" + name[5:]
    return name


def decode(raw: bytes, utf8: bool) -> str:
    """Wire bytes -> the store's UTF-8 name (INBOX normalised)."""
    if 0 in raw or b"\r" in raw or b"\n" in raw:
        raise NameError_("Invalid character in mailbox name")
    try:
        if utf8 or any(b > 0x7F for b in raw):
            name = raw.decode("utf-8")
        else:
            name = utf7.decode(raw.decode("ascii"))
    except (UnicodeDecodeError, utf7.Utf7Error):
        raise NameError_("Mailbox name is not valid modified UTF-7 or UTF-8") from None
    return normalise_inbox(name)


def encode(name: str, utf8: bool) -> bytes:
    """Store name -> wire form as an astring."""
    return response.astring(name if utf8 else utf7.encode(name))


def validate(name: str) -> str:
    """A name that may be created: non-empty components, no wildcards or controls.  A
    trailing separator is dropped (RFC 9051 §6.3.4)."""
    if name.endswith(SEP):
        name = name.rstrip(SEP)
    if not name or len(name) > MAX_NAME:
        raise NameError_("Invalid mailbox name")
    parts = name.split(SEP)
    if len(parts) > MAX_DEPTH or any(not p for p in parts):
        raise NameError_("Invalid mailbox name")
    if any(ord(c) < 0x20 or c in "%*" or 0x7F <= ord(c) < 0xA0 for c in name):
        raise NameError_("Invalid character in mailbox name")
    return name


def parents(name: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parts = name.split(SEP)
    return [SEP.join(parts[:i]) for i in range(1, len(parts))]


def pattern(reference: str, mailbox: str) -> re.Pattern[str]:
    """LIST reference + mailbox pattern -> regex; ``*`` matches anything, ``%`` anything but
    the separator (RFC 9051 §6.3.9)."""
    if reference and not reference.endswith(SEP) and mailbox and not mailbox.startswith(SEP):
        full = reference + mailbox
    elif reference.endswith(SEP) and mailbox.startswith(SEP):
        full = reference + mailbox[1:]
    else:
        full = reference + mailbox
    full = normalise_inbox(full)
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
