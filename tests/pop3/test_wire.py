"""Multi-line encoding of messages: CRLF normalisation, dot-stuffing, TOP cutting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.pop3.wire import message_reply, multiline, normalise, stuffed, top_part
from tests.pop3.util import unstuff


def test_normalise():
    assert normalise(b"a\r\nb\r\n") == b"a\r\nb\r\n"
    assert normalise(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"
    assert normalise(b"a\rb\n") == b"a\rb\r\n"  # a lone CR is data


def test_stuffing():
    assert stuffed(b".\r\n..x\r\ny.\r\n") == b"..\r\n...x\r\ny.\r\n.\r\n"
    assert stuffed(b"no final newline") == b"no final newline\r\n.\r\n"
    assert stuffed(b"") == b".\r\n"


def test_terminator_never_inside_body():
    body = stuffed(normalise(b"a\n.\nb\r\n.\r\n"))
    assert body.count(b"\r\n.\r\n") == 1 and body.endswith(b"\r\n.\r\n")


def test_retr_reply_counts_normalised_octets():
    assert message_reply(b"a\nb") == b"+OK 4 octets\r\na\r\nb\r\n.\r\n"


def test_top_part():
    msg = b"A: 1\r\nB: 2\r\n\r\n1\r\n2\r\n3\r\n"
    assert top_part(msg, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top_part(msg, 2) == b"A: 1\r\nB: 2\r\n\r\n1\r\n2\r\n"
    assert top_part(msg, 10**18) == msg
    assert top_part(b"A: 1\r\n", 5) == b"A: 1\r\n"  # header only
    assert top_part(b"\r\nbody\r\nmore", 1) == b"\r\nbody\r\n"  # no header fields
    assert top_part(b"A: 1\r\n\r\nno newline", 5) == b"A: 1\r\n\r\nno newline"


def test_multiline():
    assert multiline("x", ["a", "b"]) == b"+OK x\r\na\r\nb\r\n.\r\n"


line = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@given(st.lists(line, max_size=30), line, st.sampled_from([b"\r\n", b"\n"]))
def test_round_trip(message_lines, tail, eol):
    data = b"".join(item + eol for item in message_lines) + tail
    answer = message_reply(data)
    status, _, payload = answer.partition(b"\r\n")
    assert status.startswith(b"+OK")
    assert payload.count(b"\r\n.\r\n") + payload.startswith(b".\r\n") == 1
    expected = b"".join(item + b"\r\n" for item in message_lines)
    if tail:
        expected += tail + b"\r\n"
    assert unstuff(payload) == expected
