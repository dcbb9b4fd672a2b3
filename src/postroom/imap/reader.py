"""A cursor over one framed command (lines + literals) with the RFC 9051 §9 lexical rules.

Every method either returns a token or raises ParseError with a message safe to echo; no
other exception escapes, whatever the bytes.
"""

from __future__ import annotations

import re

from postroom.imap import seqset
from postroom.imap.seqset import SeqSet, SeqSetError

MAX_NUMBER = 0xFFFFFFFF  # number (RFC 9051 §9)
MAX_NUMBER64 = (1 << 63) - 1  # number64 (RFC 9051 §9, mod-sequence-value RFC 7162)


class ParseError(Exception):
    """The command is malformed; answered with BAD and this message."""


def _chars(spec: bytes) -> frozenset[int]:
    return frozenset(spec)


_CTL = frozenset(range(0x00, 0x20)) | {0x7F}
# ATOM-CHAR: CHAR minus atom-specials; 8-bit bytes are accepted in atoms for leniency with
# clients that send raw UTF-8 mailbox names unquoted.
_ATOM = frozenset(range(0x01, 0x100)) - _CTL - _chars(b'(){ %*"\\]')
_ASTRING = _ATOM | {ord("]")}
_LIST_CHAR = _ASTRING | _chars(b"%*")
_KEYWORD = _chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_=")
_SEQ = _chars(b"0123456789:,*$")
_DIGITS = _chars(b"0123456789")
_LITERAL = re.compile(rb"(~?)\{(\d{1,12})(\+?)\}\Z")


class Reader:
    __slots__ = ("lines", "literals", "i", "line", "pos")

    def __init__(self, lines: list[bytes], literals: list[bytes], start: int = 0) -> None:
        self.lines = lines
        self.literals = literals
        self.i = 0
        self.line = lines[0]
        self.pos = start

    # -- primitives ----------------------------------------------------------------------
    def peek(self) -> int:
        """The next byte, or -1 at the end of the current line."""
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.i == len(self.lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("Unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("Missing argument" if self.at_end() else "Expected a space")
        self.pos += 1

    def maybe(self, token: bytes) -> bool:
        """Consume ``token`` (case-insensitive) when it comes next."""
        end = self.pos + len(token)
        if self.line[self.pos : end].upper() == token.upper():
            self.pos = end
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.maybe(token):
            raise ParseError(what or f"Expected {token.decode()}")

    def _take(self, allowed: frozenset[int]) -> bytes:
        line = self.line
        start = pos = self.pos
        n = len(line)
        while pos < n and line[pos] in allowed:
            pos += 1
        self.pos = pos
        return line[start:pos]

    # -- tokens --------------------------------------------------------------------------
    def keyword(self) -> str:
        """An upper-cased word: command names, FETCH items, SEARCH keys, options."""
        word = self._take(_KEYWORD)
        if not word:
            raise ParseError("Expected a keyword")
        return word.decode("ascii").upper()

    def atom(self) -> bytes:
        word = self._take(_ATOM)
        if not word:
            raise ParseError("Expected an atom")
        return word

    def number(self, limit: int = MAX_NUMBER) -> int:
        digits = self._take(_DIGITS)
        if not digits or len(digits) > 20:
            raise ParseError("Expected a number")
        value = int(digits)
        if value > limit:
            raise ParseError("Number out of range")
        return value

    def nz_number(self, limit: int = MAX_NUMBER) -> int:
        value = self.number(limit)
        if value == 0:
            raise ParseError("Expected a non-zero number")
        return value

    def quoted(self) -> bytes:
        line = self.line
        pos = self.pos + 1  # opening DQUOTE
        out = bytearray()
        n = len(line)
        while pos < n:
            b = line[pos]
            if b == 0x22:
                self.pos = pos + 1
                return bytes(out)
            if b == 0x5C:
                pos += 1
                if pos >= n or line[pos] not in (0x22, 0x5C):
                    raise ParseError("Invalid escape in quoted string")
                b = line[pos]
            elif b == 0:
                raise ParseError("NUL in quoted string")
            out.append(b)
            pos += 1
        raise ParseError("Unterminated quoted string")

    def literal(self, allow_binary: bool = False) -> bytes:
        m = _LITERAL.match(self.line, self.pos)
        if m is None or m.end() != len(self.line) or self.i + 1 >= len(self.lines):
            raise ParseError("Invalid literal")
        if m.group(1) and not allow_binary:
            raise ParseError("literal8 not allowed here")
        data = self.literals[self.i]
        if len(data) != int(m.group(2)):
            raise ParseError("Invalid literal")
        self.i += 1
        self.line = self.lines[self.i]
        self.pos = 0
        if not allow_binary and 0 in data:
            raise ParseError("NUL in literal")
        return data

    def is_literal(self) -> bool:
        return self.peek() in (0x7B, 0x7E)

    def string(self) -> bytes:
        b = self.peek()
        if b == 0x22:
            return self.quoted()
        if b == 0x7B:
            return self.literal()
        raise ParseError("Expected a string")

    def astring(self) -> bytes:
        if self.peek() in (0x22, 0x7B):
            return self.string()
        word = self._take(_ASTRING)
        if not word:
            raise ParseError("Expected a string")
        return word

    def nstring(self) -> bytes | None:
        end = self.pos + 3
        if self.line[self.pos : end].upper() == b"NIL" and (
            end >= len(self.line) or self.line[end] in (0x20, 0x29)
        ):
            self.pos = end
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """LIST pattern: list-char atom (with % and *) or a string."""
        if self.peek() in (0x22, 0x7B):
            return self.string()
        word = self._take(_LIST_CHAR)
        if not word:
            raise ParseError("Expected a mailbox pattern")
        return word

    def seqset(self) -> SeqSet:
        text = self._take(_SEQ)
        try:
            return seqset.parse(text)
        except SeqSetError as exc:
            raise ParseError(str(exc).capitalize()) from None

    def open_paren(self) -> None:
        if self.peek() != 0x28:
            raise ParseError("Expected (")
        self.pos += 1

    def close_paren(self) -> bool:
        """Consume ``)`` if it comes next."""
        if self.peek() == 0x29:
            self.pos += 1
            return True
        return False

    def paren_list(self, item):  # noqa: ANN001, ANN201 - item: Callable[[], T] -> list[T]
        """``"(" [item *(SP item)] ")"``."""
        self.open_paren()
        out = []
        if self.close_paren():
            return out
        while True:
            out.append(item())
            if self.close_paren():
                return out
            self.sp()

    def expect_any(self, tokens: tuple[bytes, ...]) -> bytes:
        for token in tokens:
            if self.maybe(token):
                return token
        raise ParseError("Unexpected token")

    def flag(self) -> str:
        """A flag (RFC 9051 §9 flag): system flags in canonical case, keywords as sent."""
        if self.peek() == 0x5C:
            self.pos += 1
            name = self.atom()
            canonical = SYSTEM_FLAGS.get(name.upper())
            if canonical is None:
                raise ParseError("Unknown system flag")
            return canonical
        word = self.atom()
        if len(word) > MAX_KEYWORD or any(b > 0x7E for b in word):
            raise ParseError("Invalid keyword")
        return word.decode("ascii")

    def flag_list(self) -> list[str]:
        return self.paren_list(self.flag)


MAX_KEYWORD = 128
SYSTEM_FLAGS = {
    b"SEEN": "\\Seen",
    b"ANSWERED": "\\Answered",
    b"FLAGGED": "\\Flagged",
    b"DELETED": "\\Deleted",
    b"DRAFT": "\\Draft",
    b"RECENT": "\\Recent",
}
