"""The common-form shortcut of address.parse gives exactly what the tokenizer gives."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from postroom.mime import address

_PIECES = [b"a", b"bc", b"x.y", b" ", b"  ", b"\t", b"@", b"<", b">", b",", b".", b'"', b"(", b")"]
_PIECES += [b"[", b"]", b":", b";", b"\\", b"\r\n", b"\x00", b"\x7f", b"\xc3\xa9", b"=?utf-8?q?x?="]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map(b"".join))
@example(b"Joe  Bloggs <j@x.org>, bob@example.test")
@example(b"a@b@c")
@example(b"<a@b@c>")
@example(b" , a@b")
def test_shortcut_matches_the_tokenizer(raw: bytes) -> None:
    assert address.parse(raw) == address._parse(raw)


def test_common_forms_take_the_shortcut() -> None:
    assert address._SIMPLE.fullmatch(b"Alice Example <alice@example.test>")
    assert address._SIMPLE.fullmatch(b" bob@example.test ")
    assert address.parse(b"Alice  Example <alice@example.test>, bob@example.test") == [
        (b"Alice Example", None, b"alice", b"example.test"),
        (None, None, b"bob", b"example.test"),
    ]
