"""Framing and bounds: literals sync/non-sync, refusals before reading, discard by count."""

from __future__ import annotations

from postroom.imap.framer import (
    PRE_AUTH,
    Command,
    Continue,
    Framer,
    Line,
    Refused,
    post_auth,
)


def events(framer: Framer, data: bytes) -> list:
    framer.feed(data)
    out = []
    while (ev := framer.next_event()) is not None:
        out.append(ev)
    return out


def test_simple_lines_and_pipelining():
    f = Framer()
    evs = events(f, b"a NOOP\r\nb CAPABILITY\nc LOG")
    assert evs == [Command([b"a NOOP"], []), Command([b"b CAPABILITY"], [])]
    assert events(f, b"OUT\r\n") == [Command([b"c LOGOUT"], [])]


def test_sync_literal_asks_for_continuation():
    f = Framer()
    assert events(f, b"a LOGIN {3}\r\n") == [Continue()]
    assert events(f, b"bob {2}\r\n") == [Continue()]
    assert events(f, b"pw\r\n") == [Command([b"a LOGIN {3}", b" {2}", b""], [b"bob", b"pw"])]


def test_nonsync_literal_within_literal_minus():
    f = Framer()
    evs = events(f, b"a LOGIN {3+}\r\nbob pw\r\n")
    assert evs == [Command([b"a LOGIN {3+}", b" pw"], [b"bob"])]


def test_literal_bytes_are_not_commands():
    f = Framer(post_auth(10_000))
    evs = events(f, b"a APPEND INBOX {14+}\r\nb LOGOUT\r\nxx\r\n\r\n")
    assert evs == [Command([b"a APPEND INBOX {14+}", b""], [b"b LOGOUT\r\nxx\r\n"])]


def test_pre_auth_sync_literal_too_large_refused_without_continuation():
    f = Framer(PRE_AUTH)
    (ev,) = events(f, b"a LOGIN {9000}\r\n")
    assert isinstance(ev, Refused) and not ev.close
    assert ev.response.startswith(b"a BAD [TOOBIG]")
    # the stream stays in step: the next command works
    assert events(f, b"b NOOP\r\n") == [Command([b"b NOOP"], [])]


def test_pre_auth_nonsync_over_literal_minus_closes():
    f = Framer(PRE_AUTH)
    (ev,) = events(f, b"a LOGIN {5000+}\r\n" + b"x" * 100)
    assert isinstance(ev, Refused) and ev.close
    assert b"BYE" in ev.response


def test_pre_auth_long_line_refused_before_line_end():
    f = Framer(PRE_AUTH)
    (ev,) = events(f, b"tag1 LOGIN " + b"a" * 9000)
    assert isinstance(ev, Refused) and ev.close
    assert ev.response.startswith(b"tag1 BAD [TOOBIG]")


def test_post_auth_long_line_discarded_then_session_continues():
    f = Framer(post_auth(1 << 20))
    (ev,) = events(f, b"t SEARCH " + b"a" * 70_000)
    assert isinstance(ev, Refused) and not ev.close
    assert events(f, b"b" * 1000 + b"\r\nu NOOP\r\n") == [Command([b"u NOOP"], [])]


def test_discarded_line_with_nonsync_literal_discards_its_bytes():
    f = Framer(post_auth(1 << 20))
    (ev,) = events(f, b"t SEARCH " + b"a" * 70_000 + b" {12+}\r\n")
    assert isinstance(ev, Refused)
    # the 10 literal bytes look like a command but must never be executed
    assert events(f, b"x DELETE A\r\n") == []
    assert events(f, b" end\r\ny NOOP\r\n") == [Command([b"y NOOP"], [])]


def test_append_over_message_size_sync_gets_no_toobig():
    f = Framer(post_auth(1000))
    (ev,) = events(f, b"a APPEND INBOX {2000}\r\n")
    assert isinstance(ev, Refused) and not ev.close
    assert ev.response.startswith(b"a NO [TOOBIG]")


def test_append_over_message_size_nonsync_discards_exactly():
    f = Framer(post_auth(1000))
    (ev,) = events(f, b"a APPEND INBOX {2000+}\r\n")
    assert ev.response.startswith(b"a NO [TOOBIG]")
    assert events(f, b"z DELETE INBOX\r\n" * 125) == []  # 2000 bytes of data
    assert events(f, b"\r\nb NOOP\r\n") == [Command([b"b NOOP"], [])]


def test_append_within_limit_allowed_beyond_literal_limit():
    f = Framer(post_auth(200_000))
    evs = events(f, b"a APPEND INBOX {100000}\r\n")
    assert evs == [Continue()]
    evs = events(f, b"x" * 100_000 + b"\r\n")
    assert evs == [Command([b"a APPEND INBOX {100000}", b""], [b"x" * 100_000])]


def test_other_literal_over_64k_refused_after_login():
    f = Framer(post_auth(1 << 30))
    (ev,) = events(f, b"a SEARCH TEXT {70000}\r\n")
    assert ev.response.startswith(b"a BAD [TOOBIG]")


def test_huge_literal_count_is_refused_not_parsed():
    f = Framer(post_auth(1 << 20))
    (ev,) = events(f, b"a LOGIN {99999999999999999999999+}\r\n")
    assert isinstance(ev, Refused) and ev.close


def test_expect_line_and_clear():
    f = Framer()
    f.expect_line()
    assert events(f, b"AGFiYwBw {5}\r\n") == [Line(b"AGFiYwBw {5}")]
    f.feed(b"a NOOP\r\nb NOOP")
    f.clear()
    assert f.buffered == 0
    assert events(f, b"c NOOP\r\n") == [Command([b"c NOOP"], [])]


def test_bad_tag_in_refusal_is_star():
    f = Framer(PRE_AUTH)
    (ev,) = events(f, b"{9000}\r\n")
    assert ev.response.startswith(b"* BAD")
