"""COMPRESS=DEFLATE core (RFC 4978): raw deflate both ways, sync-flushed output, and input
decompressed in bounded chunks whatever it expands to."""

from __future__ import annotations

import zlib

import pytest

from postroom.imap.deflate import CHUNK, Deflate, DeflateError


def client_compressor():  # noqa: ANN201
    return zlib.compressobj(9, zlib.DEFLATED, -15)


def test_output_is_sync_flushed_raw_deflate():
    d = Deflate()
    client = zlib.decompressobj(-15)
    for line in (b"* OK first\r\n", b"a OK second\r\n" * 100):
        # each batch decompresses completely on its own: nothing is held back
        assert client.decompress(d.compress(line)) == line


def test_input_roundtrip_in_pieces():
    d = Deflate()
    c = client_compressor()
    data = c.compress(b"a NOOP\r\n" * 10) + c.flush(zlib.Z_SYNC_FLUSH)
    out = b"".join(d.decompress(data[i : i + 3]) for i in range(0, len(data), 3))
    assert out == b"a NOOP\r\n" * 10
    assert not d.pending


def test_zip_bomb_comes_out_in_bounded_chunks():
    """100 MiB of zeros compress to about 100 KiB; they come out CHUNK bytes at a time, the
    rest staying compressed until asked for."""
    c = client_compressor()
    bomb = b""
    for _ in range(100):
        bomb += c.compress(b"\0" * (1 << 20))
    bomb += c.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200_000
    d = Deflate()
    total = 0
    chunk = d.decompress(bomb)
    while True:
        assert len(chunk) <= CHUNK
        total += len(chunk)
        if not d.pending:
            break
        chunk = d.decompress()
    assert total == 100 << 20


def test_corrupt_stream():
    d = Deflate()
    with pytest.raises(DeflateError):
        d.decompress(b"\xff\xff\xff\xff garbage")


def test_end_of_stream_ignores_the_rest():
    c = client_compressor()
    d = Deflate()
    assert d.decompress(c.compress(b"x LOGOUT\r\n") + c.flush()) == b"x LOGOUT\r\n"
    assert d.decompress(b"more") == b""
    assert not d.pending
