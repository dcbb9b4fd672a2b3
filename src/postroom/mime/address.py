"""RFC 5322 §3.4 address lists for the IMAP ENVELOPE (RFC 9051 §7.5.2), lenient like c-client.

Each address becomes ``(name, adl, mailbox, host)`` over the raw bytes (encoded-words and 8-bit
text are left for the client to decode). A group is announced by ``(NIL NIL group-name NIL)`` and
closed by ``(NIL NIL NIL NIL)``. The caller bounds the input length.
"""

from __future__ import annotations

import re

Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]

# Dovecot's placeholders (lib-mail/message-address.c) so that a broken address never looks
# like a group marker, which is what NIL mailbox/host would mean.
MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"

_TOKEN = re.compile(
    rb"""[ \t\r\n]+
    |(?P<qs>"(?:[^"\\]|\\.)*"?)
    |(?P<dl>\[(?:[^\]\\]|\\.)*\]?)
    |(?P<sp>[<>@,;:.])
    |(?P<cm>\()
    |(?P<atom>[^ \t\r\n"\[\]()<>@,;:.\\]+|\\.?|.)""",
    re.X | re.S,
)
_PAREN = re.compile(rb"[()\\]")
_ESCAPED = re.compile(rb"\\(.)", re.S)

# token kinds
_ATOM, _QS, _DL, _SP, _CM = range(5)


def _tokens(raw: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    end = len(raw)
    while pos < end:
        m = _TOKEN.match(raw, pos)  # every byte starts some alternative
        kind = m.lastgroup
        if kind == "cm":
            # RFC 5322 §3.2.2: comments nest
            depth = 1
            p = m.end()
            while depth:
                q = _PAREN.search(raw, p)
                if q is None:
                    p = end
                    break
                c = raw[q.start()]
                p = q.end() + (1 if c == 0x5C else 0)
                depth += 1 if c == 0x28 else -1 if c == 0x29 else 0
            text = raw[m.end() : p - 1] if depth == 0 else raw[m.end() : p]
            out.append((_CM, text))
            pos = p
            continue
        if kind == "qs":
            out.append((_QS, m.group()))
        elif kind == "dl":
            out.append((_DL, m.group()))
        elif kind == "sp":
            out.append((_SP, m.group()))
        elif kind == "atom":
            out.append((_ATOM, m.group()))
        pos = m.end()
    return out


def _phrase(words: list[tuple[int, bytes]]) -> bytes | None:
    """Display name: words joined by one space, quoted strings unquoted (RFC 5322 §3.2.5)."""
    out: list[bytes] = []
    for kind, text in words:
        if kind == _QS:
            text = text[1:-1] if len(text) > 1 and text.endswith(b'"') else text[1:]
            if b"\\" in text:
                text = _ESCAPED.sub(rb"\1", text)
        if kind == _SP and out:  # "." in obs-phrase sticks to the word before it
            out[-1] += text
        else:
            out.append(text)
    name = b" ".join(out)
    return name or None


def _joined(words: list[tuple[int, bytes]]) -> bytes:
    """Local part or domain: tokens concatenated as written (quoted local parts keep quotes)."""
    return b"".join(text for kind, text in words if kind != _CM)


# The common forms, "local@domain", "<local@domain>" and "Display Name <local@domain>", with
# no quotes, comments, groups, routes or control characters: recognised by one match each,
# with the result the tokenizer gives them (``_parse``), at a fraction of its cost.
_SIMPLE = re.compile(
    rb"""[ \t]*(?:
        (?P<bare>[^\x00-\x20\x7f"\[\]()<>@,;:\\]+@[^\x00-\x20\x7f"\[\]()<>@,;:\\]+)
        |(?P<name>[^\x00-\x20\x7f"\[\]()<>@,;:.\\]+(?:[ \t]+[^\x00-\x20\x7f"\[\]()<>@,;:.\\]+)*)?
         [ \t]*<(?P<angle>[^\x00-\x20\x7f"\[\]()<>@,;:\\]+@[^\x00-\x20\x7f"\[\]()<>@,;:\\]+)>
    )[ \t]*""",
    re.X,
)


def parse(raw: bytes) -> list[Address]:
    """Addresses and group markers of one address-list header value."""
    out: list[Address] = []
    for piece in raw.split(b","):
        m = _SIMPLE.fullmatch(piece)
        if m is None:
            return _parse(raw)
        name, angle, bare = m.group("name", "angle", "bare")
        local, _, host = (angle or bare).partition(b"@")
        out.append((b" ".join(name.split()) if name else None, None, local, host))
    return out


def _parse(raw: bytes) -> list[Address]:
    toks = _tokens(raw)
    out: list[Address] = []
    n = len(toks)
    i = 0
    in_group = False
    while i < n:
        words: list[tuple[int, bytes]] = []
        comment: bytes | None = None
        while i < n:
            kind, text = toks[i]
            if kind == _SP and text in b"<:,;@":
                break
            if kind == _CM:
                comment = comment or text
            else:
                words.append((kind, text))
            i += 1
        stop = toks[i][1] if i < n else b""
        if stop == b":" and not in_group:
            # RFC 5322 §3.4 group: display-name ":" [group-list] ";"
            out.append((None, None, _phrase(words) or b"", None))
            in_group = True
            i += 1
            continue
        if stop == b"<":
            i, address = _angle(toks, i + 1, _phrase(words))
            out.append(address)
        elif stop == b"@":
            local = _joined(words)
            i += 1
            domain: list[tuple[int, bytes]] = []
            while i < n:
                kind, text = toks[i]
                if kind == _SP and text in b"<,;:":
                    break
                if kind == _CM:
                    comment = comment or text
                else:
                    domain.append((kind, text))
                i += 1
            # c-client/Dovecot: a trailing comment names an address that has no display name
            out.append(
                (comment or None, None, local or MISSING_MAILBOX, _joined(domain) or MISSING_DOMAIN)
            )
        elif words:
            out.append((None, None, _joined(words), MISSING_DOMAIN))
        # skip to the next address, closing a group on ";"
        while i < n:
            kind, text = toks[i]
            i += 1
            if kind == _SP and text == b";" and in_group:
                out.append((None, None, None, None))
                in_group = False
                break
            if kind == _SP and text == b",":
                break
    if in_group:
        out.append((None, None, None, None))
    return out


def _angle(toks: list[tuple[int, bytes]], i: int, name: bytes | None) -> tuple[int, Address]:
    """``[route ":"] local "@" domain ">"`` after "<" (RFC 5322 §3.4, §4.4 obs-route)."""
    n = len(toks)
    inside: list[tuple[int, bytes]] = []
    while i < n and toks[i] != (_SP, b">"):
        if toks[i][0] != _CM:
            inside.append(toks[i])
        i += 1
    adl: bytes | None = None
    colon = next((k for k, t in enumerate(inside) if t == (_SP, b":")), -1)
    if colon >= 0 and inside and inside[0] == (_SP, b"@"):
        adl = _joined(inside[:colon])
        inside = inside[colon + 1 :]
    at = max((k for k, t in enumerate(inside) if t == (_SP, b"@")), default=-1)
    if at >= 0:
        local, host = _joined(inside[:at]), _joined(inside[at + 1 :])
    else:
        local, host = _joined(inside), b""
    if i < n:
        i += 1  # ">"
    return i, (name, adl, local or MISSING_MAILBOX, host or MISSING_DOMAIN)
