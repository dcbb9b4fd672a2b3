"""FETCH responses (RFC 9051 §7.5.2) built from the session's flag cache, the stored row,
the metadata computed at delivery (ENVELOPE, BODYSTRUCTURE, BODY), and — only for body
sections — the message bytes."""

from __future__ import annotations

from postroom import mime
from postroom.imap import response
from postroom.imap.fetch import FetchAtt
from postroom.store.base import Message


class UnknownCte(Exception):
    """BINARY of a part whose transfer encoding we cannot undo (RFC 3516 §4.3)."""


def _section_bytes(item: FetchAtt, blob: bytes, parsed: mime.ParsedMessage) -> bytes | None:
    if item.kind == "SECTION":
        return mime.section(blob, parsed, item.section)
    data = mime.binary(blob, parsed, item.section)
    if data is None and mime.section(blob, parsed, item.section) is not None:
        raise UnknownCte(item.section)
    return data


def _partial(data: bytes, item: FetchAtt) -> bytes:
    if item.partial is None:
        return data
    origin, count = item.partial
    return data[origin : origin + count]


def render_item(
    item: FetchAtt,
    message: Message | None,
    parsed: mime.ParsedMessage | None,
    blob: bytes | None,
) -> bytes:
    """One ``name value`` pair of a FETCH response for an item not answered from the cache."""
    kind = item.kind
    assert message is not None
    if kind == "INTERNALDATE":
        return b"INTERNALDATE " + response.date_time(message.internaldate)
    if kind == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % message.size
    assert parsed is not None
    if kind == "ENVELOPE":
        return b"ENVELOPE " + parsed.envelope
    if kind == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + parsed.bodystructure
    if kind == "BODY":
        return b"BODY " + parsed.body
    assert blob is not None
    data = _section_bytes(item, blob, parsed)
    if kind == "BINARY.SIZE":
        return item.label + b" %d" % (len(data) if data is not None else 0)
    if data is None:
        return item.label + b" NIL"
    data = _partial(data, item)
    if kind == "BINARY" and 0 in data:
        return item.label + b" ~{%d}\r\n" % len(data) + data  # literal8, RFC 3516 §4.2
    return item.label + b" {%d}\r\n" % len(data) + data
