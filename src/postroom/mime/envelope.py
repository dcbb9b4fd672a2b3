"""The IMAP ENVELOPE of a message header (RFC 9051 §7.5.2, RFC 3501 §7.4.2).

Bound enforced here: each header value contributes at most :data:`MAX_VALUE` bytes; an address
list is cut at its last comma before that length, so the ENVELOPE of any message stays small.
"""

from __future__ import annotations

from postroom.mime import address
from postroom.mime.wire import NIL, nstring

MAX_VALUE = 64 * 1024

_ADDRESS_FIELDS = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")


def _bounded(raw: bytes, is_list: bool) -> bytes:
    if len(raw) <= MAX_VALUE:
        return raw
    raw = raw[:MAX_VALUE]
    if is_list:
        comma = raw.rfind(b",")
        return raw[:comma] if comma > 0 else raw
    # do not end inside a UTF-8 sequence
    cut = len(raw)
    while cut > 0 and cut > len(raw) - 4 and 0x80 <= raw[cut - 1] < 0xC0:
        cut -= 1
    if cut > 0 and raw[cut - 1] >= 0xC0:
        cut -= 1
    return raw[:cut]


def _text(fields: dict[bytes, bytes], name: bytes) -> bytes:
    raw = fields.get(name)
    return NIL if not raw else nstring(_bounded(raw, False))


def address_list(raw: bytes | None) -> bytes:
    """``(address...)`` or NIL; address = ``(name adl mailbox host)`` (RFC 9051 §9)."""
    if not raw:
        return NIL
    items = address.parse(_bounded(raw, True))
    if not items:
        return NIL
    return (
        b"("
        + b"".join(
            b"(%s %s %s %s)" % (nstring(n), nstring(a), nstring(m), nstring(h))
            for n, a, m, h in items
        )
        + b")"
    )


def envelope(fields: dict[bytes, bytes]) -> bytes:
    """ENVELOPE from the first occurrence of each field (lower-case name -> unfolded raw value)."""
    lists = {name: address_list(fields.get(name)) for name in _ADDRESS_FIELDS}
    # RFC 3501 §7.4.2: Sender and Reply-To default to From when absent or empty
    for name in (b"sender", b"reply-to"):
        if lists[name] == NIL:
            lists[name] = lists[b"from"]
    return b"(%s %s %s %s %s %s %s %s %s %s)" % (
        _text(fields, b"date"),
        _text(fields, b"subject"),
        lists[b"from"],
        lists[b"sender"],
        lists[b"reply-to"],
        lists[b"to"],
        lists[b"cc"],
        lists[b"bcc"],
        _text(fields, b"in-reply-to"),
        _text(fields, b"message-id"),
    )
