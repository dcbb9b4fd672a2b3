"""BODY and BODYSTRUCTURE wire forms of a part tree (RFC 9051 §7.5.2 and §9, RFC 3501 §7.4.2).

Type, subtype, parameter names, encoding and disposition type are sent upper-case, as in the RFC
examples (they are case-insensitive tokens); parameter values and other strings are sent as
written. The extensible form always carries every extension field (MD5, disposition, language,
location), the non-extensible BODY form none.
"""

from __future__ import annotations

from postroom.mime.envelope import envelope
from postroom.mime.params import Structured
from postroom.mime.structure import LEAF, MESSAGE, MULTIPART, Part
from postroom.mime.wire import NIL, nstring, string

# RFC 2045 §5.2: the default is text/plain; charset=us-ascii
_DEFAULT_CHARSET = b'("CHARSET" "US-ASCII")'


def _params(params: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """body-fld-param: ``(name value ...)`` or NIL."""
    if not params:
        return NIL
    return b"(" + b" ".join(string(n) + b" " + string(v) for n, v in params) + b")"


def _disposition(d: Structured | None) -> bytes:
    """body-fld-dsp (RFC 2183 via RFC 9051 §9)."""
    if d is None:
        return NIL
    return b"(" + string(d.value.upper().encode("ascii")) + b" " + _params(d.params) + b")"


def _language(raw: bytes | None) -> bytes:
    """body-fld-lang: the Content-Language tags (RFC 3282 §2) as a list, or NIL."""
    if not raw:
        return NIL
    tags = [t.strip(b" \t") for t in raw.split(b",")]
    tags = [t for t in tags if t]
    if not tags:
        return NIL
    return b"(" + b" ".join(string(t) for t in tags) + b")"


def _extension(p: Part, first: bytes) -> bytes:
    f = p.fields
    return b" %s %s %s %s" % (
        first,
        _disposition(p.disposition),
        _language(f.get(b"content-language")),
        nstring(f.get(b"content-location")),
    )


def _type_of(p: Part) -> tuple[bytes, bytes]:
    """Media type and subtype, upper-cased. A multipart or message/rfc822 that was not split
    (depth limit, no boundary, encoded message) is sent as application/octet-stream: the grammar
    for those types (RFC 9051 §9 body-type-mpart, body-type-msg) needs children it lacks."""
    if p.kind == LEAF and (p.ctype == "multipart" or (p.ctype, p.subtype) == ("message", "rfc822")):
        return b"APPLICATION", b"OCTET-STREAM"
    return p.ctype.upper().encode("ascii"), p.subtype.upper().encode("ascii")


def _lines(data: bytes, p: Part) -> int:
    """body-fld-lines: text lines of the body; a last line without its line break counts (in a
    multipart the CRLF before the delimiter belongs to the delimiter, RFC 2046 §5.1.1)."""
    start, end = p.body_start, p.body_end
    if start >= end:
        return 0
    return data.count(b"\n", start, end) + (data[end - 1] != 10)


def _release(full: list[bytes], basic: list[bytes], children: list[int]) -> None:
    """A child's forms are only needed by its parent: keep just the unconsumed frontier."""
    for c in children:
        full[c] = basic[c] = b""


def build(data: bytes, parts: list[Part]) -> tuple[bytes, bytes]:
    """(BODYSTRUCTURE, BODY) of the message; children are built before their parents."""
    full: list[bytes] = [b""] * len(parts)
    basic: list[bytes] = [b""] * len(parts)
    for i in range(len(parts) - 1, -1, -1):
        p = parts[i]
        ct = p.content_type
        if p.kind == MULTIPART:
            subtype = string(p.subtype.upper().encode("ascii"))
            full[i] = (
                b"("
                + b"".join(full[c] for c in p.children)
                + b" "
                + subtype
                + _extension(p, _params(ct.params) if ct else NIL)
                + b")"
            )
            basic[i] = b"(" + b"".join(basic[c] for c in p.children) + b" " + subtype + b")"
            _release(full, basic, p.children)
            continue
        ctype, subtype = _type_of(p)
        size = p.body_end - p.body_start
        params = _params(ct.params) if ct is not None else NIL
        if ctype == b"TEXT" and (ct is None or "charset" not in ct.decoded):
            # RFC 2045 §5.2: text without a charset is us-ascii (stated, as Dovecot does)
            params = (
                _DEFAULT_CHARSET if params == NIL else params[:-1] + b" " + _DEFAULT_CHARSET[1:]
            )
        f = p.fields
        fields = b"%s %s %s %s %s %s %d" % (
            string(ctype),
            string(subtype),
            params,
            nstring(f.get(b"content-id")),
            nstring(f.get(b"content-description")),
            string(p.encoding.upper().encode("latin-1") or b"7BIT"),
            size,
        )
        if p.kind == MESSAGE:
            child = parts[p.children[0]]
            lines = _lines(data, p)
            env = envelope(child.fields)
            tail_full = b" %s %s %d" % (env, full[p.children[0]], lines)
            tail_basic = b" %s %s %d" % (env, basic[p.children[0]], lines)
            _release(full, basic, p.children)
        elif ctype == b"TEXT":
            lines = _lines(data, p)
            tail_full = tail_basic = b" %d" % lines
        else:
            tail_full = tail_basic = b""
        full[i] = b"(" + fields + tail_full + _extension(p, nstring(f.get(b"content-md5"))) + b")"
        basic[i] = b"(" + fields + tail_basic + b")"
    return full[0], basic[0]
