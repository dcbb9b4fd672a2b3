"""SORT and THREAD cores: base subject extraction (RFC 5256 §2.1), sort keys and order
(RFC 5256 §3, RFC 5957), both threading algorithms and the THREAD response grammar, and the
ENVELOPE reader that feeds the address keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.imap import thread
from postroom.imap.envelope import first_address
from postroom.imap.sort import SortInfo, describe, message_ids, sort
from postroom.imap.subject import base_subject, casemap
from postroom.mime import parse


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("hello", "hello", False),
        ("Re: hello", "hello", True),
        ("RE: [list] Re: Fwd: hello (fwd)", "hello", True),
        ("Re[2]: hello", "hello", True),
        ("re :  hello  ", "hello", True),
        ("Fw: [a][b] Re: hello", "hello", True),
        ("[list] hello", "hello", False),  # a leading blob goes when something is left
        ("[list]", "[list]", False),  # ... and stays when nothing would be
        ("[Fwd: Re: hello]", "hello", True),
        ("re: [fwd: re: hello]", "hello", True),
        ("Rebecca: hello", "Rebecca: hello", False),  # "re" must be followed by ":"
        ("hello\t\r\n   world", "hello world", False),
        ("hello (fwd) (FWD)", "hello", True),
        ("", "", False),
        ("hello ", "hello", False),
        (" hello", "hello", False),
        ("fwd: hello", "hello", True),
        ("report  on\tit", "report on it", False),  # "re" without ":" is no leader
    ],
)
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="Rrefwd:[] ()x\t", max_size=40))
def test_base_subject_is_idempotent(subject):
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base


def test_casemap_folds_ascii_only():
    assert casemap("abcXYZ é") == "ABCXYZ é"


def _info(pos: int, raw: bytes, arrival: float = 0.0, size: int = 0) -> SortInfo:
    return describe(pos, pos + 1, arrival, size, parse(raw))


def test_envelope_first_address_skips_groups():
    raw = (
        b'From: "Doe, John" <jd@example.org>\r\nTo: team: a@x.org, b@x.org;, c@y.org\r\n'
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody"
    )
    env = parse(raw).envelope
    assert first_address(env, "from") == (b"Doe, John", None, b"jd", b"example.org")
    assert first_address(env, "to") == (None, None, b"a", b"x.org")
    assert first_address(env, "cc") is None
    assert first_address(b"garbage ((", "from") is None


def test_sort_keys_reverse_and_ties():
    msgs = [
        _info(0, b"From: Aaron <zed@b.org>\r\nSubject: Re: beta\r\nDate: Tue, 2 Jan 2024 00:00:00 +0000\r\n\r\n",
              arrival=30, size=300),
        _info(1, b"From: Amy <amy@b.org>\r\nSubject: alpha\r\nDate: Wed, 3 Jan 2024 00:00:00 +0100\r\n\r\n",
              arrival=10, size=100),
        _info(2, b"From: =?utf-8?q?Bob?= <x@b.org>\r\nSubject: [l] Beta\r\n\r\n", arrival=20, size=100),
    ]  # fmt: skip

    def order(*criteria):
        return [i.pos + 1 for i in sort(msgs, criteria)]

    assert order(("ARRIVAL", False)) == [2, 3, 1]
    assert order(("SIZE", False)) == [2, 3, 1]  # equal sizes keep mailbox order
    assert order(("SIZE", True)) == [1, 2, 3]  # REVERSE flips only the key, not the tie
    assert order(("SUBJECT", False), ("ARRIVAL", True)) == [2, 1, 3]
    assert order(("FROM", False)) == [2, 3, 1]  # amy, x, zed (addr-mailbox)
    assert order(("DISPLAYFROM", False)) == [1, 2, 3]  # Aaron, Amy, Bob (decoded)
    # no Date: the internal date stands in (20 s after the epoch sorts first)
    assert order(("DATE", False)) == [3, 1, 2]
    assert order(("TO", False), ("CC", False)) == [1, 2, 3]  # all empty: mailbox order


def _msg(
    pos: int, subject: str, mid: str, refs: str = "", irt: str = "", sent: float | None = None
) -> SortInfo:
    headers = {"subject": subject, "message-id": f"<{mid}>"} if mid else {"subject": subject}
    if refs:
        headers["references"] = " ".join(f"<{r}>" for r in refs.split())
    if irt:
        headers["in-reply-to"] = f"<{irt}>"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    info = describe(pos, 100 + pos, 0.0, 0, parse(head.encode() + b"\r\n"))
    info.sent = float(pos if sent is None else sent)
    return info


def test_message_ids():
    assert message_ids("<a@b> junk <c\r\n @d>") == ["a@b", "c@d"]
    assert message_ids("no ids <>") == []


def _render(roots) -> bytes:
    return thread.render(roots, lambda i: i.pos + 1)


def test_thread_references():
    msgs = [
        _msg(0, "hello", "a"),
        _msg(1, "Re: hello", "b", "a"),
        _msg(2, "Re: hello", "c", "a b"),
        _msg(3, "Re: hello", "d", irt="a"),
        _msg(4, "other", "e"),
        _msg(5, "Re: other", "f", "missing"),
        _msg(6, "unrelated", "g", "missing"),
        _msg(7, "lonely", ""),
    ]
    # 2 and 4 are siblings under 1, 3 answers 2; the dummy "missing" (two children) is kept
    # at the top and absorbs 5, which has the same base subject as its first child.
    assert _render(thread.references(msgs)) == b"THREAD (1 (2 3)(4))((5)(6)(7))(8)"
    out = thread.render(thread.references(msgs), lambda i: i.uid)
    assert out.startswith(b"THREAD (100 (101 102)(103))")


def test_thread_references_subject_merge_and_dates():
    msgs = [
        _msg(0, "Re: topic", "r1", sent=50),  # a reply whose parent is not in the mailbox
        _msg(1, "topic", "t", sent=60),  # the original (not a reply) becomes the parent
        _msg(2, "news", "n1", sent=10),
        _msg(3, "news", "n2", sent=20),  # two originals: a dummy holds both
    ]
    assert _render(thread.references(msgs)) == b"THREAD ((3)(4))(2 1)"


def test_thread_references_duplicates_and_loops():
    msgs = [
        _msg(0, "a", "x", "y"),
        _msg(1, "b", "y", "x"),  # would close a loop: not linked
        _msg(2, "c", "x"),  # duplicate Message-ID: a thread of its own
    ]
    assert _render(thread.references(msgs)) == b"THREAD (2 1)(3)"


def test_thread_ordered_subject():
    msgs = [
        _msg(0, "b", "1", sent=5),
        _msg(1, "Re: a", "2", sent=3),
        _msg(2, "a", "3", sent=1),
        _msg(3, "re: B", "4", sent=6),
        _msg(4, "A", "5", sent=2),
        _msg(5, "c", "6", sent=4),
    ]
    assert _render(thread.ordered_subject(msgs)) == b"THREAD (3 (5)(2))(6)(1 4)"
    assert _render([]) == b"THREAD"


@pytest.mark.parametrize("forward", [True, False])
def test_thread_deep_chain_is_iterative(forward):
    """A 50,000-message reply chain (either order) must not hit the recursion limit."""
    n = 50_000
    msgs = [
        _msg(i, "s", f"m{i}", f"m{i - 1}" if forward and i else f"m{i + 1}" if not forward and
             i < n - 1 else "")
        for i in range(n)
    ]  # fmt: skip
    out = _render(thread.references(msgs))
    assert out.count(b"(") == 1 and out.count(b" ") == n
