"""Hostile messages: each parse stays under a CPU-time ceiling and a memory ceiling.

These are bound checks (a parse that went quadratic or recursed without limit would blow them),
not performance measurements.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from postroom.mime import parse, section
from postroom.mime.envelope import MAX_VALUE
from postroom.mime.headers import MAX_FIELDS
from postroom.mime.structure import HARD_DEPTH, MAX_DEPTH, MAX_PARTS
from postroom.mime.text import MAX_TEXT
from tests.mime.syntax import check_body, read

CPU_CEILING = 2.0  # seconds of process time per parse
MEMORY_CEILING = 64 << 20  # bytes allocated at peak during a parse (input excluded)


def bounded_parse(data: bytes):
    """Parse under both ceilings; the memory run is separate so tracing does not skew CPU."""
    start = time.process_time()
    parsed = parse(data)
    assert time.process_time() - start < CPU_CEILING
    tracemalloc.start()
    try:
        parse(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_CEILING
    check_body(read(parsed.bodystructure), extended=True)
    return parsed


def _leaves(parsed) -> int:
    return parsed.body.count(b'("TEXT"') + parsed.body.count(b'("APPLICATION"')


def test_100000_to_fields():
    data = b"".join(b"To: user%d@example.com\r\n" % i for i in range(100_000)) + b"\r\nbody"
    p = bounded_parse(data)
    assert b'((NIL NIL "user0" "example.com"))' in p.envelope
    assert p.headers["to"] == "user0@example.com"


def test_100000_addresses_in_one_folded_to_field():
    data = b"To: " + b",\r\n ".join(b"u%d@example.com" % i for i in range(100_000)) + b"\r\n\r\n"
    p = bounded_parse(data)
    # the address list is cut at a comma within MAX_VALUE bytes: whole addresses only
    assert len(p.envelope) < 2 * MAX_VALUE
    assert p.envelope.count(b'"example.com")') > 1000
    assert len(p.headers["to"]) <= MAX_VALUE


@pytest.mark.parametrize("name", [b"Subject", b"To", b"X-Long", b"Content-Type"])
def test_10_mib_header_field(name):
    value = b"a" * (10 << 20)
    if name == b"Content-Type":
        value = b"text/plain; x=" + value
    p = bounded_parse(name + b": " + value + b"\r\n\r\nbody")
    assert len(p.envelope) < 2 * MAX_VALUE
    assert all(len(v) <= MAX_VALUE for v in p.headers.values())


def test_10_mib_header_without_line_breaks_or_end():
    p = bounded_parse(b"X" * (10 << 20))
    assert p.body == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)'


def test_header_field_count_is_capped():
    data = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_FIELDS)) + b"Subject: late\r\n\r\n"
    p = bounded_parse(data)
    assert "subject" not in p.headers  # beyond the indexed fields
    assert section(data, p, "HEADER") == data  # every byte is still served


def test_10000_deep_multipart_nesting():
    depth = 10_000
    data = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            for i in range(depth)
        )
        + b"\r\nleaf\r\n"
        + b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    )
    p = bounded_parse(data)
    assert p.body.count(b'"MIXED"') == MAX_DEPTH
    assert b'"APPLICATION" "OCTET-STREAM"' in p.body  # the part at the cap is opaque
    assert section(data, p, ".".join(["1"] * MAX_DEPTH)) is not None


def test_1000_deep_message_rfc822_nesting():
    data = b"Subject: s\r\nContent-Type: message/rfc822\r\n\r\n" * 1000 + b"\r\ninnermost"
    p = bounded_parse(data)
    assert p.body.count(b'"MESSAGE" "RFC822"') == MAX_DEPTH
    assert section(data, p, ".".join(["1"] * 50) + ".HEADER") is not None


def test_cyclic_boundary_nesting():
    # every level reuses the same boundary: bounded by the depth cap, never by luck
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" * 2_000 + b"\r\nx\r\n--b--\r\n"
    )
    p = bounded_parse(data)
    assert p.body.count(b'"MIXED"') <= MAX_DEPTH + 1


def test_duplicate_boundaries_many_parts():
    # 100,000 delimiter lines: parts stop at MAX_PARTS, the rest stays in the last body
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 100_000
    p = bounded_parse(data)
    assert _leaves(p) == MAX_PARTS - 1


def test_many_sibling_multiparts_with_distinct_boundaries():
    # one search pattern per distinct boundary; none grows with the number of siblings
    data = (
        b"Content-Type: multipart/mixed; boundary=top\r\n\r\n"
        + b"".join(
            b"--top\r\nContent-Type: multipart/mixed; boundary=in%d\r\n\r\n--in%d\r\n\r\nx\r\n"
            b"--in%d--\r\n" % (i, i, i)
            for i in range(2_500)
        )
        + b"--top--\r\n"
    )
    p = bounded_parse(data)
    assert _leaves(p) < MAX_PARTS


def test_lines_that_look_like_delimiters():
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + b"--x\r\n-\r\n" * 500_000
    )
    p = bounded_parse(data)
    assert _leaves(p) == 1


def test_100000_rfc2231_continuations():
    params = b"".join(b";\r\n name*%d=a" % i for i in range(100_000))
    p = bounded_parse(b"Content-Type: text/plain" + params + b"\r\n\r\nx")
    assert len(p.bodystructure) < 16 << 10


def test_index_text_is_bounded():
    data = b"Content-Type: text/plain\r\n\r\n" + b"word " * (1 << 20)
    p = bounded_parse(data)
    assert len(p.text) == MAX_TEXT
    assert len(p.preview) == 200


def test_html_with_unclosed_elements():
    data = b"Content-Type: text/html\r\n\r\n" + b"<style><script<head<" * 200_000
    p = bounded_parse(data)
    assert p.text == ""


def test_large_leaf_at_the_depth_cap():
    # every enclosing multipart searches the big leaf once for its own boundary, no more
    chain = b"".join(
        b"Content-Type: multipart/mixed; boundary=c%d\r\n\r\n--c%d\r\n" % (i, i)
        for i in range(MAX_DEPTH)
    )
    data = chain + b"\r\n" + b"--c1x and some text that is not a delimiter\r\n" * 100_000
    p = bounded_parse(data)
    assert p.body.count(b'"MIXED"') == MAX_DEPTH


def test_limits_from_settings():
    nested = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(10)
    )
    assert parse(nested, max_depth=3).body.count(b'"MIXED"') == 3
    p = parse(b"A: 1\r\nB: 2\r\nSubject: s\r\n\r\n", max_fields=2)
    assert "subject" not in p.headers


def test_depth_setting_is_capped_below_the_recursion_limit():
    data = b"Content-Type: message/rfc822\r\n\r\n" * 5_000
    p = bounded_parse_with(data, max_depth=1_000_000)
    assert p.body.count(b'"MESSAGE" "RFC822"') == HARD_DEPTH


def bounded_parse_with(data: bytes, **limits):
    start = time.process_time()
    parsed = parse(data, **limits)
    assert time.process_time() - start < CPU_CEILING
    return parsed
