"""Envelope addresses (RFC 5321 §4.1.2, extended by RFC 6531 §3.3) and xtext (RFC 3461 §4).

Parsing is strict: what is accepted here ends up in Received/Return-Path header fields and in
store lookups, so anything outside the grammar is refused rather than repaired.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# RFC 6531 §3.3: UTF8-non-ascii may appear in atext, qtextSMTP and sub-domains.  C1 controls
# and the Unicode line/paragraph separators are excluded: they would be line breaks for some
# consumers of the header fields these addresses end up in.
_U = "\u00a0-\u2027\u202a-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_U}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_U}]|\\[\x20-\x7e])*"'
_SUB = rf"[A-Za-z0-9{_U}](?:[A-Za-z0-9\-{_U}]*[A-Za-z0-9{_U}])?"
_DOMAIN = rf"{_SUB}(?:\.{_SUB})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_PATH = re.compile(
    rf"<(?:@{_DOMAIN}(?:,@{_DOMAIN})*:)?"  # A-d-l: source route, accepted and ignored (§4.1.2)
    rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})>"
)
_DOT_STRING_ONLY = re.compile(_DOT_STRING)
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")
_TAG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")

# RFC 5321 §4.5.3.1.1-3: octet limits on local-part, domain and the whole path.
MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256


class PathError(ValueError):
    """The path is malformed (``kind`` "syntax") or too long (``kind`` "length")."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Address:
    local: str
    domain: str  # lower-cased; an address literal keeps its brackets

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local

    @property
    def ascii(self) -> bool:
        return str(self).isascii()


def parse_path(text: str) -> tuple[Address | None, str]:
    """Parse a reverse- or forward-path at the start of ``text``.

    Returns the address (None for the null path "<>") and the rest of the text after ">".
    Non-ASCII is accepted here; whether it is allowed (SMTPUTF8) is the caller's decision,
    taken once the parameters are known.
    """
    if text.startswith("<>"):
        return None, text[2:]
    match = _PATH.match(text)
    if match is None:
        raise PathError("syntax")
    local, domain = match["local"], match["domain"]
    if domain.startswith("[") and not _valid_literal(domain[1:-1]):
        raise PathError("syntax")
    if (
        len(local.encode()) > MAX_LOCAL
        or len(domain.encode()) > MAX_DOMAIN
        or len(match.group().encode()) > MAX_PATH
    ):
        raise PathError("length")
    return Address(_canonical_local(local), domain.lower()), text[match.end() :]


def _canonical_local(local: str) -> str:
    """A quoted local part that needs no quoting is the same mailbox unquoted
    (RFC 5321 §4.1.2: "the local-part ... SHOULD be ... Dot-string" when possible)."""
    if local.startswith('"'):
        inner = re.sub(r"\\(.)", r"\1", local[1:-1])
        if _DOT_STRING_ONLY.fullmatch(inner):
            return inner
    return local


def _valid_literal(body: str) -> bool:
    """RFC 5321 §4.1.3: IPv4, "IPv6:" + IPv6, or a tagged general literal."""
    if body[:5].lower() == "ipv6:":
        try:
            ipaddress.IPv6Address(body[5:])
        except ValueError:
            return False
        return True
    if ":" in body:
        tag, _, content = body.partition(":")
        return bool(_TAG.fullmatch(tag)) and bool(_DCONTENT.fullmatch(content))
    try:
        ipaddress.IPv4Address(body)
    except ValueError:
        return False
    return True


def is_domain(text: str) -> bool:
    """A syntactically valid domain or address literal (for EHLO names in trace fields)."""
    if text.startswith("[") and text.endswith("]"):
        return _valid_literal(text[1:-1])
    return len(text) <= MAX_DOMAIN and re.fullmatch(_DOMAIN, text) is not None


# -- xtext (RFC 3461 §4) ------------------------------------------------------------------
# xchar is "!" .. "~" except "+" and "="; hexchar is "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")


def xtext_decode(text: str) -> str:
    """Decode xtext; ValueError when ``text`` is not xtext."""
    if not _XTEXT.fullmatch(text):
        raise ValueError("not xtext")
    return _HEXCHAR.sub(lambda m: chr(int(m[1], 16)), text)
