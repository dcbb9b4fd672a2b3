"""Property tests: any bytes parse, the wire forms are well-formed, storage round-trips, and
generated MIME trees come back part for part."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.mime import ParsedMessage, binary, header_values, parse, section
from tests.mime.syntax import check_body, check_envelope, read

SPECS = [
    "",
    "HEADER",
    "TEXT",
    "1",
    "2",
    "1.1",
    "1.MIME",
    "2.HEADER",
    "1.TEXT",
    "2.1.2",
    "HEADER.FIELDS (FROM TO)",
    "HEADER.FIELDS.NOT (SUBJECT)",
    "3.HEADER.FIELDS (X)",
]


def _check(data: bytes) -> ParsedMessage:
    p = parse(data)
    check_envelope(read(p.envelope))
    check_body(read(p.bodystructure), extended=True)
    check_body(read(p.body), extended=False)
    assert isinstance(p.preview, str) and len(p.preview) <= 200
    p.text.encode("utf-8")
    for value in p.headers.values():
        value.encode("utf-8")
    q = ParsedMessage.from_bytes(p.to_bytes())
    assert (
        q.envelope,
        q.bodystructure,
        q.body,
        q.headers,
        q.sent_date,
        q.preview,
        q.text,
        q.parts,
    ) == (p.envelope, p.bodystructure, p.body, p.headers, p.sent_date, p.preview, p.text, p.parts)
    for spec in SPECS:
        got = section(data, p, spec)
        assert got is None or isinstance(got, bytes)
    for part in ("", "1", "2", "1.2"):
        got = binary(data, p, part)
        assert got is None or isinstance(got, bytes)
    header_values(data, "from")
    return p


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data):
    _check(data)


# Building blocks biased towards MIME syntax, shuffled into messages.
_PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b"\r\n\r\n",
        b"--",
        b"--b",
        b"--b--",
        b"--c",
        b" ",
        b"\t",
        b":",
        b";",
        b"=",
        b'"',
        b"(",
        b")",
        b"<",
        b">",
        b"@",
        b",",
        b"\\",
        b"*",
        b"'",
        b"%",
        b"\x00",
        b"\xff",
        b"\xc3\xa9",
        b"=?utf-8?q?",
        b"?=",
        b"=?x?b?",
        b"From: ",
        b"To: ",
        b"Subject: ",
        b"Date: ",
        b"Sender: ",
        b"Cc: g:",
        b"Content-Type: ",
        b"multipart/mixed; boundary=b",
        b"multipart/digest; boundary=c",
        b'multipart/alternative; boundary="b"',
        b"message/rfc822",
        b"text/plain; charset=utf-7",
        b"text/html",
        b"Content-Disposition: ",
        b"attachment; filename*0*=utf-8''%E2; filename*1=x",
        b"Content-Transfer-Encoding: ",
        b"base64",
        b"quoted-printable",
        b"Content-Language: en, fr",
        b"Content-Location: x",
        b"<script>",
        b"</script",
        b"&amp;",
        b"aGVsbG8=",
        b"=C3=A9",
        b"=\r\n",
        b"a@b",
        b"x",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120))
def test_mime_shaped_noise(pieces):
    _check(b"".join(pieces))


# A generated tree: ("leaf", header, body) | ("multi", boundary, children) | ("msg", inner)
_TEXT = st.text(alphabet="abc xyz\r\n.:;=", max_size=40).map(lambda s: s.encode())


def _leaf():
    return st.tuples(
        st.just("leaf"),
        st.sampled_from(
            [
                b"",
                b"Content-Type: text/plain; charset=utf-8\r\n",
                b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n",
                b"Content-Type: text/html\r\nContent-Disposition: attachment; filename=a.html\r\n",
            ]
        ),
        _TEXT,
    )


def _tree(children):
    return st.one_of(
        st.tuples(
            st.just("multi"),
            st.sampled_from(["mixed", "alternative"]),
            st.lists(children, min_size=1, max_size=4),
        ),
        st.tuples(st.just("msg"), children),
    )


TREES = st.recursive(_leaf(), _tree, max_leaves=10)


def _join(path: str, n: int) -> str:
    return f"{path}.{n}" if path else str(n)


def _entity(tree, counter, expected, path, header_prefix):
    """(header, body) of one entity; records the sections its part numbers must return."""
    kind = tree[0]
    if kind == "leaf":
        return header_prefix + tree[1] + b"\r\n", tree[2]
    if kind == "msg":
        inner = _message(tree[1], counter, expected, path)
        split = inner.index(b"\r\n\r\n") + 4
        expected[path + ".HEADER"] = inner[:split]
        expected[path + ".TEXT"] = inner[split:]
        return header_prefix + b"Content-Type: message/rfc822\r\n\r\n", inner
    counter[0] += 1
    boundary = b"=_b%d" % counter[0]
    header = header_prefix + b'Content-Type: multipart/%s; boundary="%s"\r\n\r\n' % (
        tree[1].encode(),
        boundary,
    )
    body = b"preamble"
    for i, child in enumerate(tree[2], 1):
        child_path = _join(path, i)
        child_header, child_body = _entity(child, counter, expected, child_path, b"")
        expected[child_path] = child_body
        expected[child_path + ".MIME"] = child_header
        body += b"\r\n--" + boundary + b"\r\n" + child_header + child_body
    body += b"\r\n--" + boundary + b"--\r\nepilogue"
    return header, body


def _message(tree, counter, expected, path) -> bytes:
    """A message whose parts are numbered below ``path`` (RFC 9051 §6.4.5)."""
    if tree[0] == "multi":
        header, body = _entity(tree, counter, expected, path, b"Subject: s\r\n")
    else:
        # a non-multipart message has one part, its body, which holds any further numbers
        header, body = _entity(tree, counter, expected, _join(path, 1), b"Subject: s\r\n")
        expected[_join(path, 1)] = body
    return header + body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_generated_trees_round_trip(tree):
    expected: dict[str, bytes] = {}
    data = _message(tree, [0], expected, "")
    p = _check(data)
    for spec, want in expected.items():
        assert section(data, p, spec) == want, spec
    # one leaf or message part per generated leaf/message
    leaves = len(re.findall(rb'\("(?:TEXT|APPLICATION|MESSAGE)"', p.body))
    assert leaves == _count(tree)


def _count(tree) -> int:
    if tree[0] == "leaf":
        return 1
    if tree[0] == "msg":
        return 1 + _count(tree[1])
    return sum(_count(c) for c in tree[2])
