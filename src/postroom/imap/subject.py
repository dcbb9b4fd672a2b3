"""Base subject extraction (RFC 5256 §2.1), for SORT SUBJECT and both THREAD algorithms.

The Subject is already decoded (RFC 2047) by ``postroom.mime`` at delivery; what is left is
to strip the reply/forward decorations and to know whether any were there (THREAD=REFERENCES
prefers the original message over a reply when it groups threads by subject).
"""

from __future__ import annotations

import re

_WS = re.compile(r"[ \t\r\n]{2,}|[\t\r\n]")  # what step (1) changes
# RFC 5256 §5: subj-blob = "[" *BLOBCHAR "]" *WSP ; BLOBCHAR excludes "[" and "]"
_BLOB = r"\[[^\[\]]*\] *"
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD = r"(?:re|fwd?) *(?:" + _BLOB + r")?:"
# subj-leader = (*subj-blob subj-refwd) / WSP
_LEADER = re.compile(r"(?:" + _BLOB + r")*" + _REFWD + r"| +", re.IGNORECASE)
_LEADING_BLOB = re.compile(_BLOB)
_TRAILER = re.compile(r"(?: |\(fwd\))+\Z", re.IGNORECASE)  # subj-trailer = "(fwd)" / WSP
_CASEMAP = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def casemap(text: str) -> str:
    """The i;ascii-casemap collation key (RFC 4790 §9.2): only a-z are folded."""
    return text.translate(_CASEMAP)


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, whether it was a reply or forward), RFC 5256 §2.1 steps 1-6."""
    text = _WS.sub(" ", subject)  # (1) tabs and continuations to space, runs collapsed
    if not text or (
        text[-1] not in " )"
        and text[0] not in " ["
        and (text[0] not in "rRfF" or _LEADER.match(text) is None)
    ):
        return text, False  # no trailer (2), leader or blob (3)-(5), nor "[fwd:" (6) there
    reply = False
    while True:
        # (2) remove trailing "(fwd)" and white space
        m = _TRAILER.search(text) if text[-1:] in (" ", ")") else None
        if m is not None:
            if "(" in m.group():
                reply = True
            text = text[: m.start()]
        # (3)-(5) remove leaders and leading blobs until none is left
        while True:
            m = _LEADER.match(text)
            if m is not None and m.end():
                reply = reply or bool(m.group().strip())
                text = text[m.end() :]
                continue
            m = _LEADING_BLOB.match(text)
            if m is not None and text[m.end() :].strip(" "):
                text = text[m.end() :]
                continue
            break
        # (6) "[fwd:" ... "]" wraps a forwarded subject: unwrap, start again at (2)
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply
