"""COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) both ways, sans-IO.

Output is flushed with Z_SYNC_FLUSH after each batch of responses so the client can
decompress everything sent so far (RFC 4978 §4).  Input is decompressed at most CHUNK bytes
at a time: what a small compressed packet expands to waits, still compressed, in zlib's
``unconsumed_tail`` until the framer has taken the previous chunk, so a "zip bomb" costs
CPU time proportional to its expansion but never memory.
"""

from __future__ import annotations

import zlib

CHUNK = 65536  # decompressed bytes handed to the framer at a time
# Our compressor's window and memory level (RFC 4978 §4 lets the server choose smaller
# ones): about 64 KiB of zlib state instead of 256 KiB.  The decompressor must accept any
# window the client picked, so it keeps the full 32 KiB one.
COMPRESS_WBITS = -13
COMPRESS_MEMLEVEL = 6


class DeflateError(Exception):
    """The client's compressed stream is corrupt."""


class Deflate:
    def __init__(self) -> None:
        self._out = zlib.compressobj(6, zlib.DEFLATED, COMPRESS_WBITS, COMPRESS_MEMLEVEL)
        self._in = zlib.decompressobj(-15)

    def compress(self, data: bytes) -> bytes:
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes = b"") -> bytes:
        """Feed compressed bytes (none to continue with what is pending); returns at most
        CHUNK decompressed bytes, possibly none when more input is needed."""
        if self._in.eof:
            return b""  # the client ended its stream; anything after it is ignored
        pending = self._in.unconsumed_tail
        try:
            return self._in.decompress(pending + data if pending else data, CHUNK)
        except zlib.error as exc:
            raise DeflateError(str(exc)) from None

    @property
    def pending(self) -> bool:
        """Compressed input is waiting to be decompressed."""
        return bool(self._in.unconsumed_tail) and not self._in.eof
