"""Log lines: escaped fields, batched per event-loop iteration, none lost at exit."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from postroom import log


def handler_on(stream: io.StringIO) -> log.LoopBatchedHandler:
    return log.LoopBatchedHandler(stream)


def test_fields_cannot_forge_lines() -> None:
    assert log._quote("a b") == '"a b"'
    assert log._quote("x\r\ny=1") == '"x\\r\\ny=1"'
    assert log._quote('say "hi"') == '"say \\"hi\\""'
    assert log._quote("plain") == "plain"
    assert log._quote("") == '""'


def test_loop_lines_go_out_together_after_the_iteration() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("postroom.test.batched")
    logger.handlers[:] = [handler_on(stream)]
    logger.propagate = False

    async def main() -> str:
        logger.warning("one")
        logger.warning("two")
        seen_inside = stream.getvalue()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return seen_inside

    assert asyncio.run(main()) == ""
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 3)[3] for line in lines] == ["one", "two"]
    assert " WARNING " in lines[0]


def test_thread_lines_are_written_at_once_and_flush_empties_everything() -> None:
    stream = io.StringIO()
    handler = handler_on(stream)
    logger = logging.getLogger("postroom.test.threads")
    logger.handlers[:] = [handler]
    logger.propagate = False
    worker = threading.Thread(target=logger.warning, args=("from a thread",))
    worker.start()
    worker.join()
    assert stream.getvalue().endswith("from a thread\n")

    async def main() -> None:
        logger.warning("waiting")
        handler.flush()  # as logging.shutdown() does at exit, even with the loop stopped
        assert stream.getvalue().endswith("waiting\n")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.getvalue().count("waiting") == 1


def test_direct_events_look_like_records(monkeypatch) -> None:
    stream = io.StringIO()
    handler = handler_on(stream)
    logger = logging.getLogger("postroom.test.direct")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("via logging")
    monkeypatch.setattr(log, "_direct", handler)
    log.event("via event", logging.WARNING, user="a b")
    record, direct = stream.getvalue().splitlines()
    assert record.split(" ", 2)[2] == "WARNING via logging"
    assert direct.split(" ", 2)[2] == 'WARNING via event user="a b"'
    assert len(record.split(" ")[1]) == len(direct.split(" ")[1]) == len("01:02:03,456")


class WriteRecorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_batches_are_written_in_whole_lines_that_fit_a_pipe_write() -> None:
    """SMTP worker processes share stderr: each write holds whole lines and, unless a single
    line is longer, at most PIPE_BUF bytes, which a pipe never splits or interleaves."""
    stream = WriteRecorder()
    lines = [f"line {n} {'é' * (n % 200)}\n" for n in range(300)] + ["x" * 5000 + "\n"]
    handler_on(stream)._write(lines)
    assert "".join(stream.writes) == "".join(lines)
    assert all(w.endswith("\n") for w in stream.writes)
    assert all(len(w.encode()) <= 4096 for w in stream.writes if w.count("\n") > 1)
    assert len(stream.writes) < len(lines) / 3  # still batched
