"""Structured logging: one line per event, ``key=value`` pairs, to stderr.

A busy server logs a few lines per message, so once ``setup`` has installed postroom's own
handler, ``event`` hands it the line directly (no LogRecord, no caller lookup), the timestamp
text is rebuilt once a second, and lines written by the event loop's thread are collected and
written once per loop iteration (one syscall for all the sessions served in it) instead of one
write and flush per line.  Without ``setup`` (a library user, the tests) events go through
``logging`` as usual.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import TextIO

logger = logging.getLogger("postroom")
_direct: LoopBatchedHandler | None = None  # set by setup(): event() writes through it

_NEEDS_QUOTES = re.compile(r'[ ="\\]')
_WRITE_CHARS = 4096 // 4  # characters that fit PIPE_BUF (4096 bytes on Linux) in any UTF-8


def setup(level: str = "info") -> None:
    # The logging HOWTO's "Optimization" switches: fields no postroom line shows.
    logging._srcfile = None  # type: ignore[attr-defined]  # noqa: SLF001 - skips findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchedHandler(sys.stderr)
    root = logging.getLogger("postroom")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    global _direct
    _direct = handler


class Formatter(logging.Formatter):
    """The stdlib's default timestamp layout, with the seconds part formatted once a second."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self.stamp(record.created)

    def stamp(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._text},{int((when - second) * 1000):03d}"


class LoopBatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines logged on a thread running an event loop wait for the end of the current loop
    iteration and go out together; lines from other threads are written at once."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines = Formatter("%(asctime)s %(levelname)s %(message)s")
        self.setFormatter(self._lines)
        self._batches: dict[asyncio.AbstractEventLoop, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def event(self, level: int, text: str) -> None:
        """A line of ``event()``, formatted as a record would be, without making one."""
        stamp = self._lines.stamp(time.time())
        with self.lock:  # type: ignore[union-attr]
            self.add(f"{stamp} {logging.getLevelName(level)} {text}\n")

    def add(self, line: str) -> None:
        """Called with self.lock held (as logging.Handler.handle does around emit)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write([line])
            return
        batch = self._batches.get(loop)
        if batch is None:
            self._batches[loop] = batch = []
            loop.call_soon(self._flush_loop, loop)
        batch.append(line)

    def _flush_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines = self._batches.pop(loop, [])
        self._write(lines)

    def _write(self, lines: list[str]) -> None:
        """Write whole lines, in writes of at most PIPE_BUF bytes where lines allow: the SMTP
        worker processes share stderr, and a pipe keeps such a write in one piece."""
        try:
            chunk: list[str] = []
            size = 0
            for line in lines:
                if chunk and size + len(line) > _WRITE_CHARS:
                    self.stream.write("".join(chunk))
                    chunk.clear()
                    size = 0
                chunk.append(line)
                size += len(line)
            if chunk:
                self.stream.write("".join(chunk))
            self.stream.flush()
        except Exception:  # a closed or full stderr must not stop the server
            pass

    def flush(self) -> None:
        """Everything still waiting (at exit, or from a loop that stopped first)."""
        with self.lock:  # type: ignore[union-attr]
            batches, self._batches = self._batches, {}
        self._write([line for lines in batches.values() for line in lines])


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text) or not text.isprintable():
        text = '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    return text


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``name`` with fields; values are escaped so a client cannot forge log lines."""
    if logger.isEnabledFor(level):
        parts = [name] + [f"{k}={_quote(v)}" for k, v in fields.items() if v is not None]
        if _direct is not None:
            _direct.event(level, " ".join(parts))
        else:
            logger.log(level, " ".join(parts))
