"""FETCH data items (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ/CHANGEDSINCE/VANISHED)
parsed into FetchAtt, each knowing what it needs: the session's flag cache, the precomputed
metadata, or the message bytes."""

from __future__ import annotations

from dataclasses import dataclass

from postroom.imap import response
from postroom.imap.reader import MAX_NUMBER64, ParseError, Reader
from postroom.imap.seqset import SeqSet

# What an item is answered from.
CACHE, ROW, META, BLOB = range(4)

_SIMPLE = {
    "UID": CACHE,
    "FLAGS": CACHE,
    "MODSEQ": CACHE,
    "INTERNALDATE": ROW,
    "RFC822.SIZE": ROW,
    "ENVELOPE": META,
    "BODYSTRUCTURE": META,
    "BODY": META,
}
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_TEXT_SPECS = frozenset({"HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
_FIELD_NAME = frozenset(range(0x21, 0x7F)) - {0x3A}  # RFC 5322 §3.6.8 ftext
MAX_ITEMS = 64
MAX_FIELDS = 256


@dataclass(frozen=True, slots=True)
class FetchAtt:
    kind: str  # a key of _SIMPLE, "SECTION", "BINARY" or "BINARY.SIZE"
    source: int  # CACHE, ROW, META or BLOB
    section: str = ""  # postroom.mime section spec ("", "1.2", "HEADER.FIELDS (FROM TO)")
    label: bytes = b""  # the item name in the response
    partial: tuple[int, int] | None = None  # <origin.count>
    sets_seen: bool = False  # BODY[...] / BINARY[...] / RFC822 / RFC822.TEXT without PEEK


@dataclass(frozen=True, slots=True)
class FetchArgs:
    seqset: SeqSet
    items: tuple[FetchAtt, ...]
    changedsince: int | None = None  # RFC 7162 §3.1.4.1
    vanished: bool = False  # RFC 7162 §3.2.6


def _simple(name: str) -> FetchAtt:
    return FetchAtt(name, _SIMPLE[name], label=name.encode())


def _partial(r: Reader) -> tuple[int, int] | None:
    if r.peek() != 0x3C:
        return None
    r.pos += 1
    origin = r.number()
    r.expect(b".")
    count = r.nz_number()
    r.expect(b">")
    return origin, count


def _section(r: Reader, binary: bool) -> tuple[str, bytes]:
    """``[section]`` -> (mime spec, response label text between the brackets)."""
    r.expect(b"[")
    if r.maybe(b"]"):
        return "", b""
    word = r.keyword()
    parts = word.split(".")
    i = 0
    while i < len(parts) and parts[i].isdigit():
        if parts[i].startswith("0") or len(parts[i]) > 9:
            raise ParseError("Invalid section part")
        i += 1
    text = ".".join(parts[i:])
    if binary and text:
        raise ParseError("BINARY takes a part number only")
    if text and (text not in _TEXT_SPECS or (text == "MIME" and i == 0)):
        raise ParseError("Invalid section")
    if i == 0 and not text:
        raise ParseError("Invalid section")
    spec = word
    label = word.encode()
    if text.startswith("HEADER.FIELDS"):
        r.sp()
        names = r.paren_list(r.astring)
        if not names or len(names) > MAX_FIELDS:
            raise ParseError("Invalid header list")
        for name in names:
            if not name or any(b not in _FIELD_NAME for b in name):
                raise ParseError("Invalid header field name")
        joined = b" ".join(response.astring(n) for n in names)
        spec = word + " (" + b" ".join(names).decode("ascii").upper() + ")"
        label = word.encode() + b" (" + joined + b")"
    r.expect(b"]")
    return spec, label


def _item(r: Reader) -> list[FetchAtt]:
    name = r.keyword()
    if name in _MACROS:
        return [_simple(n) for n in _MACROS[name]]
    if name == "BODY" and r.peek() == 0x5B or name == "BODY.PEEK":
        spec, label = _section(r, binary=False)
        partial = _partial(r)
        full = b"BODY[" + label + b"]" + (b"<%d>" % partial[0] if partial else b"")
        return [FetchAtt("SECTION", BLOB, spec, full, partial, name == "BODY")]
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        spec, label = _section(r, binary=True)
        if name == "BINARY.SIZE":
            return [FetchAtt("BINARY.SIZE", BLOB, spec, b"BINARY.SIZE[" + label + b"]")]
        partial = _partial(r)
        full = b"BINARY[" + label + b"]" + (b"<%d>" % partial[0] if partial else b"")
        return [FetchAtt("BINARY", BLOB, spec, full, partial, name == "BINARY")]
    if name == "RFC822":
        return [FetchAtt("SECTION", BLOB, "", b"RFC822", None, True)]
    if name == "RFC822.HEADER":
        return [FetchAtt("SECTION", BLOB, "HEADER", b"RFC822.HEADER", None, False)]
    if name == "RFC822.TEXT":
        return [FetchAtt("SECTION", BLOB, "TEXT", b"RFC822.TEXT", None, True)]
    if name in _SIMPLE:
        return [_simple(name)]
    raise ParseError("Unknown FETCH item")


def parse_fetch(r: Reader) -> FetchArgs:
    """After ``FETCH``: SP sequence-set SP items [SP "(" modifiers ")"]."""
    r.sp()
    seqset = r.seqset()
    r.sp()
    items: list[FetchAtt] = []
    if r.peek() == 0x28:
        for group in r.paren_list(lambda: _item(r)):
            items.extend(group)
    else:
        items.extend(_item(r))
    if not items or len(items) > MAX_ITEMS:
        raise ParseError("Invalid FETCH item list")
    changedsince = None
    vanished = False
    if not r.at_end():
        r.sp()
        r.open_paren()
        while True:
            word = r.keyword()
            if word == "CHANGEDSINCE":
                r.sp()
                changedsince = r.number(MAX_NUMBER64)
            elif word == "VANISHED":
                vanished = True
            else:
                raise ParseError("Unknown FETCH modifier")
            if r.close_paren():
                break
            r.sp()
    r.end()
    if vanished and changedsince is None:
        raise ParseError("VANISHED requires CHANGEDSINCE")  # RFC 7162 §3.2.6
    seen = set()
    unique = []
    for item in items:
        if item.label not in seen:
            seen.add(item.label)
            unique.append(item)
    return FetchArgs(seqset, tuple(unique), changedsince, vanished)
