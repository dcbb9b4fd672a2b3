"""Calls between the server process and its SMTP worker processes, over one Unix socket.

Each frame is a 4-byte length and a pickle of ``(kind, id, body)``: a request names a method
and its arguments, a reply carries the result or the exception.  Either side may call the
other, and calls are answered out of order, each request running as its own task.  Both ends
are processes of the same postroom started by the server itself over a socketpair, so pickle
crosses no trust boundary; frames are still bounded, so a confused peer cannot make the other
buffer without limit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from postroom import log

_HEADER = struct.Struct("!I")
_REQUEST, _RESULT, _ERROR, _NOTE = range(4)

Handler = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


class ChannelClosed(Exception):
    """The other process went away (or closed the channel)."""


class RemoteError(Exception):
    """An exception on the other side that could not be sent as itself."""


class Channel:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        max_frame: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.max_frame = max_frame
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def call(self, method: str, *args: Any) -> Any:
        """Run ``method`` on the other side and return its result (or raise its exception)."""
        return await self.send(method, *args)

    def send(self, method: str, *args: Any) -> asyncio.Future[Any]:
        """Send the call now; the future is its result.  The caller may work meanwhile."""
        if self._closed:
            raise ChannelClosed("the channel is closed")
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        future.add_done_callback(lambda _: self._waiting.pop(call_id, None))
        try:
            self._send(_REQUEST, call_id, (method, args))
        except BaseException:
            future.cancel()
            raise
        return future

    def notify(self, method: str, *args: Any) -> None:
        """Send a call that is not answered (its failure is logged over there, not raised)."""
        if not self._closed:
            self._send(_NOTE, 0, (method, args))

    async def serve(self) -> None:
        """Read frames until the other side closes; requests in flight are then cancelled."""
        try:
            while True:
                try:
                    header = await self.reader.readexactly(_HEADER.size)
                    (size,) = _HEADER.unpack(header)
                    if size > self.max_frame:
                        log.event("ipc: frame over the bound", logging.ERROR, size=size)
                        return
                    kind, call_id, body = pickle.loads(await self.reader.readexactly(size))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if kind in (_REQUEST, _NOTE):
                    answer = self._answer(call_id, *body) if kind == _REQUEST else self._note(*body)
                    task = asyncio.create_task(answer)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:
                    future = self._waiting.get(call_id)
                    if future is not None and not future.done():
                        if kind == _RESULT:
                            future.set_result(body)
                        else:
                            future.set_exception(body)
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ChannelClosed("the other process went away"))
        for task in self._tasks:
            task.cancel()
        self.writer.close()

    async def _answer(self, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self.handler(method, args)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            self._reply(_ERROR, call_id, exc)
        else:
            self._reply(_RESULT, call_id, result)

    async def _note(self, method: str, args: tuple[Any, ...]) -> None:
        try:
            await self.handler(method, args)
        except Exception as exc:  # noqa: BLE001 - nobody to tell but the log
            log.event("ipc: notification failed", logging.ERROR, method=method, error=repr(exc))

    def _reply(self, kind: int, call_id: int, body: Any) -> None:
        if self._closed:
            return
        try:
            self._send(kind, call_id, body)
        except (pickle.PicklingError, TypeError, AttributeError, ChannelClosed) as exc:
            # Cannot be sent as itself (or is over the bound): the caller still gets an answer.
            self._send(_ERROR, call_id, RemoteError(f"{type(body).__name__}: {exc}"))

    def _send(self, kind: int, call_id: int, body: Any) -> None:
        payload = pickle.dumps((kind, call_id, body), protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) > self.max_frame:
            raise ChannelClosed(f"frame of {len(payload)} bytes is over the bound")
        # One write: one wake-up of the other side (writelines joins or writes the two as one).
        self.writer.writelines((_HEADER.pack(len(payload)), payload))
