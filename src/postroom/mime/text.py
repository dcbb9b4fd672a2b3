"""Body text for the full-text index and the preview (RFC 8970 PREVIEW, at most 256 chars).

Bounds enforced here: at most :data:`MAX_TEXT` characters of text per message, at most
:data:`MAX_PART_INPUT` encoded bytes of one part decoded, and :data:`PREVIEW_CHARS` characters of
preview. HTML is reduced to its text with linear scans only (no backtracking patterns).
"""

from __future__ import annotations

import html
import re

from postroom.mime.structure import LEAF, MULTIPART, Part
from postroom.mime.transfer import decode
from postroom.mime.words import decode_charset

MAX_TEXT = 1 << 20
MAX_PART_INPUT = 4 << 20
PREVIEW_CHARS = 200

_TAG = re.compile(r"<[^>]*>?")
_HIDDEN = ("script", "style", "head")


def _strip_html(text: str) -> str:
    """Text content of HTML: script/style/head elements dropped, tags removed, entities decoded."""
    lower = text.lower()
    out: list[str] = []
    pos = 0
    # next occurrence of each element's start tag at or after pos (found once, kept until passed)
    nxt = {tag: lower.find("<" + tag) for tag in _HIDDEN}
    while True:
        for tag, at in nxt.items():
            if 0 <= at < pos:
                nxt[tag] = lower.find("<" + tag, pos)
        found = [(at, tag) for tag, at in nxt.items() if at >= 0]
        if not found:
            out.append(text[pos:])
            break
        at, tag = min(found)
        out.append(text[pos:at])
        close = lower.find("</" + tag, at)
        if close < 0:
            break
        end = lower.find(">", close)
        pos = len(text) if end < 0 else end + 1
    return html.unescape(_TAG.sub(" ", "".join(out)))


def _part_text(data: bytes, p: Part) -> str | None:
    raw = data[p.body_start : min(p.body_end, p.body_start + MAX_PART_INPUT)]
    decoded = decode(raw, p.encoding)
    if decoded is None:
        return None
    charset = p.content_type.decoded.get("charset") if p.content_type else None
    text = decode_charset(decoded[: MAX_TEXT * 4], charset)
    if p.subtype == "html":
        text = _strip_html(text)
    return text


def _alternative(parts: list[Part], children: list[int]) -> list[int]:
    """RFC 2046 §5.1.4: alternatives carry the same content; index only one, plain first."""
    for wanted in ("plain", "html"):
        for c in children:
            if parts[c].ctype == "text" and parts[c].subtype == wanted:
                return [c]
    return children[-1:]


def extract(data: bytes, parts: list[Part]) -> tuple[str, str]:
    """(text, preview) of the message."""
    chunks: list[str] = []
    size = 0
    preview = ""
    stack = [0]
    while stack and size < MAX_TEXT:
        p = parts[stack.pop()]
        if p.kind != LEAF:
            children = p.children
            if p.kind == MULTIPART and p.subtype == "alternative":
                children = _alternative(parts, children)
            stack.extend(reversed(children))
            continue
        if p.ctype != "text" or p.body_end <= p.body_start:
            continue
        text = _part_text(data, p)
        if not text:
            continue
        text = text[: MAX_TEXT - size]
        chunks.append(text)
        size += len(text)
        attachment = p.disposition is not None and p.disposition.value == "attachment"
        if not preview and not attachment:
            preview = " ".join(text[: PREVIEW_CHARS * 8].split())[:PREVIEW_CHARS]
    return "\n".join(chunks), preview
