"""Reads back the ENVELOPE computed at delivery (RFC 9051 §7.5.2) for SORT's address keys.

SORT FROM/TO/CC want the addr-mailbox of the first address and DISPLAYFROM/DISPLAYTO its
display name (RFC 5256 §3, RFC 5957 §3); the ENVELOPE already holds both, split by the same
address parser that FETCH answers with, so they are read from it rather than re-parsed from
the header.  The input is our own wire form, but the reader still never raises.
"""

from __future__ import annotations

Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]  # name adl mailbox host
FIELDS = {"from": 2, "sender": 3, "reply-to": 4, "to": 5, "cc": 6, "bcc": 7}


def _items(data: bytes) -> list[object]:
    """The parenthesised list ``data`` as nested lists of bytes / None (NIL)."""
    stack: list[list[object]] = [[]]
    pos, n = 0, len(data)
    while pos < n:
        b = data[pos]
        if b == 0x28:  # (
            stack.append([])
            pos += 1
        elif b == 0x29:  # )
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
            pos += 1
        elif b == 0x22:  # quoted string with \\ and \" escapes
            out = bytearray()
            pos += 1
            while pos < n and data[pos] != 0x22:
                if data[pos] == 0x5C and pos + 1 < n:
                    pos += 1
                out.append(data[pos])
                pos += 1
            stack[-1].append(bytes(out))
            pos += 1
        elif b == 0x7B:  # {n}\r\n literal
            end = data.find(b"}", pos)
            if end < 0 or not data[pos + 1 : end].isdigit():
                break
            size = int(data[pos + 1 : end])
            start = end + 3
            stack[-1].append(data[start : start + size])
            pos = start + size
        elif data.startswith(b"NIL", pos):
            stack[-1].append(None)
            pos += 3
        else:
            pos += 1
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    top = stack[0]
    return top[0] if top and isinstance(top[0], list) else []


def first_address(envelope: bytes, field: str) -> Address | None:
    """The first real address of an address field (group markers skipped), or None."""
    items = _items(envelope)
    index = FIELDS[field]
    if len(items) <= index or not isinstance(items[index], list):
        return None
    for entry in items[index]:
        if isinstance(entry, list) and len(entry) == 4:
            name, adl, mailbox, host = entry
            if host is None:  # (NIL NIL group NIL) / (NIL NIL NIL NIL): group syntax
                continue
            return name, adl, mailbox, host  # type: ignore[return-value]
    return None
