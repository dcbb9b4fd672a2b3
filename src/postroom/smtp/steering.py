"""While the first SMTP worker is not busy, every new connection goes to it.

Each worker accepts on its own socket in an SO_REUSEPORT group, and by default the kernel picks
the socket from a hash of the connection's addresses.  A lone client's connections, one after
another, then land on worker after worker, and each has to warm up again (CPU caches, its
store's pages after the others' commits): one session delivering message after message went
13% faster at 4 KiB and 15% at 100 KiB with all of it on one worker (bench/smtp_ingest.py's
client, six interleaved pairs each).

So the group carries a one-instruction classic BPF program (SO_ATTACH_REUSEPORT_CBPF, which
applies to the whole group whichever of its sockets it is set on): "the first socket" -- the
first worker's, the first to listen -- while that worker has fewer than ``BUSY`` sessions, and
"none" once it has that many, which makes the kernel fall back to its hash, so under load every
worker gets its share as before.  The first worker switches as its own count crosses the
bounds (back to itself only once it is down to ``IDLE``, so a steady load does not make it
switch at every session).  When it dies, the server sends every connection to the second
worker until the replacement takes over: none waits for it (with the hash alone, the dead
worker's share would).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from postroom import log

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>; Python does not name it
# Linux, on the architectures with that number (parisc and sparc have their own).
AVAILABLE = sys.platform == "linux" and not platform.machine().startswith(("parisc", "sparc"))
BUSY = 4  # sessions of the first worker from which connections are spread again
IDLE = 1  # ... and at or below which they all come to it again

_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
_FIRST, _SECOND = 0, 1  # sockets by the order they started listening: the workers' order
_NONE = 0xFFFFFFFF  # an index no group has: the kernel uses its hash


def _program(index: int) -> ctypes.Array[ctypes.c_uint64]:
    """``return index``, as a struct sock_filter array of one."""
    (instruction,) = struct.unpack("=Q", struct.pack("=HBBI", _BPF_RET_K, 0, 0, index))
    return (ctypes.c_uint64 * 1)(instruction)


_PROGRAMS = {index: _program(index) for index in (_FIRST, _SECOND, _NONE)}


def _attach(sockets: Iterable[socket.socket], index: int) -> None:
    program = _PROGRAMS[index]
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))  # struct sock_fprog, padded
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def to_second(fds: Iterable[int]) -> None:
    """Every new connection to the second worker's socket: what the server does when the
    first worker dies, until its replacement steers to itself again."""
    for fd in fds:
        with socket.socket(fileno=os.dup(fd)) as sock:
            try:
                _attach([sock], _SECOND)
            except OSError as exc:
                log.event("smtp steering failed", logging.WARNING, error=repr(exc))


class Steering:
    """The first worker's side: counts its sessions and switches the program."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self._sockets = sockets
        self._sessions = 0
        self._spread = True  # what a group starts with (no program)
        self._broken = False

    def start(self) -> None:
        self._switch(spread=False)

    def counted(
        self, handler: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        """The session handler, counting the sessions it serves."""

        async def serve(conn: Any) -> None:
            self._sessions += 1
            if self._sessions >= BUSY and not self._spread:
                self._switch(spread=True)
            try:
                await handler(conn)
            finally:
                self._sessions -= 1
                if self._sessions <= IDLE and self._spread:
                    self._switch(spread=False)

        return serve

    def _switch(self, *, spread: bool) -> None:
        if self._broken:
            return
        try:
            _attach(self._sockets, _NONE if spread else _FIRST)
        except OSError as exc:  # a kernel without it (before 4.5): the hash it is
            self._broken = True
            log.event("smtp steering unavailable", logging.WARNING, error=repr(exc))
            return
        self._spread = spread
