"""Core: DATA (end marker, dot-unstuffing, smuggling, bare CR/LF, size and line bounds) and
BDAT (RFC 3030) including BDAT 0 LAST and refused chunks."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from postroom.smtp.data import DotReader
from postroom.smtp.reply import LOCAL_ERROR
from postroom.smtp.server import Mail, Message
from tests.smtp.core import Driver, codes


def ready(**options: object) -> Driver:
    d = Driver(**options)
    d.ready()
    return d


def data(d: Driver, body: bytes) -> bytes:
    out = d.send(b"DATA\r\n")
    assert codes(out) == ["354"], out
    return d.send(body)


def test_message_is_dot_unstuffed_and_passed_on():
    d = ready()
    out = data(d, b"Subject: x\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n")
    assert codes(out) == ["250 2.0.0"]
    assert d.messages[0].data == b"Subject: x\r\n\r\n.leading dot\r\n..\r\nend\r\n"
    assert d.core.transaction is None  # the transaction ends with DATA


def test_empty_message():
    d = ready()
    assert codes(data(d, b".\r\n")) == ["250 2.0.0"]
    assert d.messages[0].data == b""


def test_body_split_at_every_position_gives_the_same_message():
    body = b"A: b\r\n\r\n.x\r\nline\nbare lf\r\n..\r\n.\r\nNOOP\r\n"
    expected = b"A: b\r\n\r\nx\r\nline\r\nbare lf\r\n.\r\n"
    for cut in range(len(body) + 1):
        d = ready()
        d.send(b"DATA\r\n")
        out = d.send(body[:cut]) + d.send(body[cut:])
        assert codes(out) == ["250 2.0.0", "250 2.0.0"], cut
        assert d.messages[0].data == expected, cut


def test_byte_by_byte_feeding():
    body = b"Subject: s\r\n\r\n" + b"line.\r\n.\r\n".replace(b"line.", b"x" * 30)
    d = ready()
    d.send(b"DATA\r\n")
    out = b"".join(d.send(bytes([b])) for b in body)
    assert codes(out) == ["250 2.0.0"]
    assert d.messages[0].data == b"Subject: s\r\n\r\n" + b"x" * 30 + b"\r\n"


@pytest.mark.parametrize(
    "probe",
    [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\n", b"\n.\r", b"\r\n.\r"],
)
def test_smuggled_mail_from_never_becomes_a_message(probe):
    d = ready()
    body = (
        b"Subject: legit\r\n\r\nhello"
        + probe
        + b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n"
    )
    out = data(d, body)
    mails = [e for e in d.events if isinstance(e, Mail)]
    assert len(mails) == 1  # only the real MAIL FROM was ever a command
    assert all(b"evil@" not in str(e).encode() for e in mails)
    replies = codes(out)
    if d.messages:  # normalised: one message containing the probe's text
        assert replies[0] == "250 2.0.0"
        assert b"MAIL FROM:<evil@example.org>" in d.messages[0].data
        assert len(d.messages) == 1
    else:  # bare CR: the whole message is refused
        assert replies[0] == "554 5.5.2"
    assert replies[1:] == ["221 2.0.0"]


def test_bare_lf_is_normalised_and_bare_cr_rejected():
    d = ready()
    assert codes(data(d, b"a\nb\r\n.\r\n")) == ["250 2.0.0"]
    assert d.messages[0].data == b"a\r\nb\r\n"
    d = ready()
    assert codes(data(d, b"a\rb\r\n.\r\n")) == ["554 5.5.2"]
    assert d.messages == [] and d.core.transaction is None


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (b"a\r\r\nb\r\n", None),  # a CR right before a CRLF
        (b"a\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),  # an LF right before a CRLF
        (b"\n\n\r\n", b"\r\n\r\n\r\n"),
        (b"a\r\n\rb\r\n", None),  # a CR after a CRLF
        (b"a\n\rb\r\n", None),  # LF CR: the CR is bare whatever the LF is
    ],
)
def test_bare_cr_and_lf_next_to_a_crlf(body, stored):
    d = ready()
    reply = codes(data(d, body + b".\r\n"))
    if stored is None:
        assert reply == ["554 5.5.2"] and d.messages == []
    else:
        assert reply == ["250 2.0.0"] and d.messages[0].data == stored


def test_oversize_message_is_refused_after_the_end_without_buffering():
    d = ready(max_size=1000)
    d.send(b"DATA\r\n")
    for _ in range(50):
        assert d.send(b"x" * 98 + b"\r\n") == b""
    reader = d.core._reader
    assert reader is not None and reader.error is not None and reader._parts == []
    assert codes(d.send(b".\r\nNOOP\r\n")) == ["552 5.3.4", "250 2.0.0"]
    assert d.messages == [] and d.core.transaction is None


def test_message_exactly_at_the_limit_is_accepted():
    d = ready(max_size=100)
    assert codes(data(d, b"x" * 98 + b"\r\n.\r\n")) == ["250 2.0.0"]
    d = ready(max_size=100)
    assert codes(data(d, b"x" * 99 + b"\r\n.\r\n")) == ["552 5.3.4"]


def test_long_lines_are_kept_intact_up_to_the_bound():
    d = ready(max_data_line=5000, max_size=100_000)
    line = b"y" * 4000
    assert codes(data(d, b"a\r\n" + line + b"\r\n.\r\n")) == ["250 2.0.0"]
    assert d.messages[0].data == b"a\r\n" + line + b"\r\n"


def test_lines_over_the_bound_reject_the_message_without_buffering():
    d = ready(max_data_line=100, max_size=100_000)
    d.send(b"DATA\r\n")
    assert d.send(b"z" * 5000) == b""
    assert d.core._reader is not None and len(d.core._reader._carry) <= 4
    out = d.send(b"z" * 5000 + b"\r\n.\r\nNOOP\r\n")
    assert codes(out) == ["554 5.6.0", "250 2.0.0"]
    d = ready(max_data_line=100, max_size=100_000)
    assert codes(data(d, b"ok\r\n" + b"q" * 101 + b"\r\nok\r\n.\r\n")) == ["554 5.6.0"]


def test_end_marker_after_over_long_line_straddling_reads():
    d = ready(max_data_line=10)
    d.send(b"DATA\r\n")
    assert d.send(b"w" * 50 + b"\r\n.\r") == b""
    assert codes(d.send(b"\n")) == ["554 5.6.0"]


def test_data_sequence_errors():
    d = Driver()
    d.send(b"EHLO c.example\r\n")
    assert codes(d.send(b"DATA\r\n")) == ["503 5.5.1"]
    d.send(b"MAIL FROM:<a@example.org>\r\n")
    assert codes(d.send(b"DATA\r\n")) == ["554 5.5.1"]
    d.send(b"RCPT TO:<b@example.test>\r\n")
    assert codes(d.send(b"DATA now\r\n")) == ["501 5.5.4"]


def test_delivery_failure_reply_ends_the_transaction():
    d = ready()
    d.data_reply = LOCAL_ERROR
    assert codes(data(d, b"x\r\n.\r\n")) == ["451 4.3.0"]
    assert d.core.transaction is None


def test_commands_pipelined_after_the_end_are_answered():
    d = ready()
    out = data(d, b"x\r\n.\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.test>\r\n")
    assert codes(out) == ["250 2.0.0", "250 2.1.0", "250 2.1.5"]


def test_dotreader_returns_the_bytes_after_the_marker():
    reader = DotReader(1000, 1000)
    assert reader.feed(b"a\r\n.\r\nRSET\r\n") == b"RSET\r\n"
    assert reader.data() == b"a\r\n"


# -- BDAT -----------------------------------------------------------------------------------
def test_bdat_chunks_are_joined_verbatim():
    d = ready()
    out = d.send(b"BDAT 7\r\nab\r\n.\r\nBDAT 5 LAST\r\n\rc\nde")
    assert codes(out) == ["250 2.0.0", "250 2.0.0"]
    assert d.messages[0].data == b"ab\r\n.\r\n\rc\nde"  # no unstuffing, no end marker


def test_bdat_zero_last_ends_the_message():
    d = ready()
    assert codes(d.send(b"BDAT 3\r\nabcBDAT 0 LAST\r\n")) == ["250 2.0.0", "250 2.0.0"]
    assert d.messages[0].data == b"abc"
    d = ready()
    assert codes(d.send(b"BDAT 0 last\r\n")) == ["250 2.0.0"]
    assert d.messages[-1].data == b""


def test_bdat_chunk_straddling_reads():
    d = ready()
    assert d.send(b"BDAT 10 LAST\r\n01234") == b""
    assert codes(d.send(b"56789NOOP\r\n")) == ["250 2.0.0", "250 2.0.0"]
    assert d.messages[0].data == b"0123456789"


def test_bdat_data_is_never_read_as_commands_when_refused():
    d = Driver()
    d.send(b"EHLO c.example\r\n")
    out = d.send(b"BDAT 21\r\nMAIL FROM:<e@x.org>\r\nNOOP\r\n")
    assert codes(out) == ["503 5.5.1", "250 2.0.0"]
    assert not any(isinstance(e, Mail) for e in d.events)


def test_bdat_over_the_size_limit_fails_the_transaction_and_discards_the_rest():
    d = ready(max_size=10)
    out = d.send(b"BDAT 8\r\n12345678BDAT 8\r\n12345678BDAT 4 LAST\r\nabcdNOOP\r\n")
    assert codes(out) == ["250 2.0.0", "552 5.3.4", "503 5.5.1", "250 2.0.0"]
    assert d.messages == [] and d.core.transaction is None


def test_data_after_bdat_is_out_of_sequence():
    d = ready()
    d.send(b"BDAT 1\r\nx")
    assert codes(d.send(b"DATA\r\n")) == ["503 5.5.1"]


@pytest.mark.parametrize("arg", [b"", b"x", b"-1", b"1 MORE", b"1" * 21, b"1 LAST x"])
def test_bdat_syntax_error_closes_the_connection(arg):
    d = ready()
    out = d.send(b"BDAT " + arg + b"\r\nMAIL FROM:<e@x.org>\r\n")
    assert codes(out) == ["421 4.5.4"] and d.core.closed


def test_bdat_message_event_carries_the_transaction():
    d = ready()
    d.send(b"BDAT 2 LAST\r\nhi")
    event = d.messages[0]
    assert isinstance(event, Message)
    assert [str(r.address) for r in event.transaction.recipients] == ["b@example.test"]


def reference(wire: bytes, max_line: int) -> tuple[bytes | None, set[str]]:
    """DATA read the obvious way, line by line: (message, the error statuses it may get)."""
    end = 0 if wire.startswith(b".\r\n") else wire.find(b"\r\n.\r\n") + 2
    lines = wire[:end].split(b"\r\n")[:-1] if end else []
    lines = [line[1:] if line[:1] == b"." else line for line in lines]
    errors = set()
    if any(b"\r" in line for line in lines):
        errors.add("5.5.2")
    # A bare LF is part of its line; the dot of stuffing does not count (RFC 5321 §4.5.3.1.6).
    if any(len(line) > max_line for line in lines):
        errors.add("5.6.0")
    if errors:
        return None, errors
    lines = [part for line in lines for part in line.split(b"\n")]
    return b"".join(line + b"\r\n" for line in lines), errors


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([b"", b"..", b".x"]),  # never "." alone: that ends DATA
            st.integers(0, 70),
            st.sampled_from([b"", b"", b"", b"\n", b"\r"]),
        ),
        max_size=30,
    ),
    cuts=st.lists(st.integers(1, 40), max_size=30),
)
@example(lines=[(b"..", 29, b"")], cuts=[32])  # a longest line, stuffed, its CR read alone
def test_dotreader_matches_a_line_by_line_reading(lines, cuts):
    """End marker, unstuffing, bare CR/LF and the line bound (30 octets here, so the block
    search around it is exercised) agree with the obvious reading, however reads split."""
    body = b"".join(
        lead + b"x" * n + (odd + b"y" if odd else b"") + b"\r\n" for lead, n, odd in lines
    )
    wire = body + b".\r\nQUIT\r\n"
    expected, errors = reference(wire, 30)
    reader = DotReader(1 << 20, 30)
    rest, at = None, 0
    for size in [*cuts, len(wire)]:
        rest = reader.feed(wire[at : at + size])
        at += size
        if rest is not None:
            break
    assert rest is not None and rest + wire[at:] == b"QUIT\r\n"
    if not errors:
        assert reader.error is None and reader.data() == expected
    else:
        assert reader.error is not None and reader.error.status in errors
