"""ESMTP parameters of MAIL and RCPT, parsed strictly (RFC 5321 §4.1.2 esmtp-param).

Each value is checked against the grammar of the extension that defines it; an unknown
keyword is 555 (RFC 5321 §4.1.1.11), a malformed or repeated one 501.  DSN values (RFC 3461)
are decoded from xtext and kept for the outbound queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.smtp.address import xtext_decode
from postroom.smtp.reply import Reply

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 §3.3 adds UTF8-non-ascii.
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u00a0-\u2027\u202a-\U0010ffff]+")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# Controls (C0, DEL, C1), surrogates and line separators never enter an envelope record.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNI_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")

MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
MAX_SIZE_DIGITS = 20  # RFC 1870 §4: size-value ::= 1*20DIGIT
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})

SYNTAX = Reply(501, "5.5.4", "Invalid parameter syntax")
DUPLICATE = Reply(501, "5.5.4", "Parameter given twice")
UNKNOWN = Reply(555, "5.5.4", "Parameter not recognised")


class ParamError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class MailParams:
    size: int | None = None  # RFC 1870 SIZE, as declared
    body: str | None = None  # "7BIT" or "8BITMIME" (RFC 6152)
    smtputf8: bool = False  # RFC 6531 §3.4
    ret: str | None = None  # "FULL" or "HDRS" (RFC 3461 §4.3)
    envid: str | None = None  # RFC 3461 §4.4, xtext-decoded
    auth: str | None = None  # RFC 4954 §5 AUTH=, decoded, "<>" kept as is; informative only
    requiretls: bool = False  # RFC 8689 §4, recorded for the outbound queue


@dataclass(frozen=True, slots=True)
class RcptParams:
    notify: frozenset[str] | None = None  # {"NEVER"} or a subset of NOTIFY_VALUES
    orcpt: tuple[str, str] | None = None  # (addr-type, decoded original recipient)


def split(text: str) -> dict[str, str | None]:
    """``" KEY=value KEY2"`` -> {"KEY": "value", "KEY2": None}.  Keywords are upper-cased."""
    out: dict[str, str | None] = {}
    if text and not text.startswith(" "):
        raise ParamError(SYNTAX)
    for token in text.split():
        keyword, eq, value = token.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (eq and not _VALUE.fullmatch(value)):
            raise ParamError(SYNTAX)
        keyword = keyword.upper()
        if keyword in out:
            raise ParamError(DUPLICATE)
        out[keyword] = value if eq else None
    return out


def parse_mail(text: str) -> MailParams:
    values: dict[str, object] = {}
    for keyword, value in split(text).items():
        if keyword == "SIZE":
            if value is None or not value.isascii() or not value.isdigit():
                raise ParamError(SYNTAX)
            if len(value) > MAX_SIZE_DIGITS:
                raise ParamError(SYNTAX)
            values["size"] = int(value)
        elif keyword == "BODY":
            body = (value or "").upper()
            if body == "BINARYMIME":  # RFC 3030 §3: not offered, so not accepted
                raise ParamError(Reply(555, "5.5.4", "BODY=BINARYMIME is not supported"))
            if body not in ("7BIT", "8BITMIME"):
                raise ParamError(SYNTAX)
            values["body"] = body
        elif keyword in ("SMTPUTF8", "REQUIRETLS"):
            if value is not None:
                raise ParamError(SYNTAX)
            values[keyword.lower()] = True
        elif keyword == "RET":
            ret = (value or "").upper()
            if ret not in ("FULL", "HDRS"):
                raise ParamError(SYNTAX)
            values["ret"] = ret
        elif keyword == "ENVID":
            envid = _xtext(value)
            if len(envid) > MAX_ENVID or not _PRINTABLE.fullmatch(envid):
                raise ParamError(SYNTAX)
            values["envid"] = envid
        elif keyword == "AUTH":
            auth = "<>" if value == "<>" else _xtext(value)
            if not _PRINTABLE.fullmatch(auth):
                raise ParamError(SYNTAX)
            values["auth"] = auth
        else:
            raise ParamError(UNKNOWN)
    return MailParams(**values)  # type: ignore[arg-type]


def parse_rcpt(text: str) -> RcptParams:
    notify: frozenset[str] | None = None
    orcpt: tuple[str, str] | None = None
    for keyword, value in split(text).items():
        if keyword == "NOTIFY":
            notify = _notify(value)
        elif keyword == "ORCPT":
            orcpt = _orcpt(value)
        else:
            raise ParamError(UNKNOWN)
    return RcptParams(notify, orcpt)


def _xtext(value: str | None) -> str:
    if value is None:
        raise ParamError(SYNTAX)
    try:
        return xtext_decode(value)
    except ValueError:
        raise ParamError(SYNTAX) from None


def _notify(value: str | None) -> frozenset[str]:
    """RFC 3461 §4.1: "NEVER", or a comma list of SUCCESS, FAILURE, DELAY."""
    items = (value or "").upper().split(",")
    chosen = frozenset(items)
    if len(chosen) != len(items):
        raise ParamError(SYNTAX)
    if chosen == {"NEVER"} or (chosen and chosen <= NOTIFY_VALUES):
        return chosen
    raise ParamError(SYNTAX)


def _orcpt(value: str | None) -> tuple[str, str]:
    """RFC 3461 §4.2: addr-type ";" xtext; for addr-type utf-8 the address may also use
    the \\x{HEX} escapes and, with SMTPUTF8, raw UTF-8 (RFC 6533 §3)."""
    if value is None or len(value) > MAX_ORCPT:
        raise ParamError(SYNTAX)
    addr_type, sep, encoded = value.partition(";")
    if not sep or not _ATOM.fullmatch(addr_type) or not encoded:
        raise ParamError(SYNTAX)
    addr_type = addr_type.lower()
    if addr_type == "utf-8":
        ascii_part = re.sub(r"[^\x00-\x7f]", "", encoded)
        _xtext(ascii_part)  # the ASCII characters must still be valid xtext
        decoded = re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), encoded)
        try:
            decoded = _UNI_ESCAPE.sub(lambda m: chr(int(m[1], 16)), decoded)
        except (ValueError, OverflowError):
            raise ParamError(SYNTAX) from None
    else:
        decoded = _xtext(encoded)
        if not decoded.isascii():
            raise ParamError(SYNTAX)
    if not decoded or _CONTROL.search(decoded):
        raise ParamError(SYNTAX)
    return addr_type, decoded
