"""A request body that streams into the isolate while the Worker runs (the isolate half).

The host sends a large body as ``body.chunk`` notifications, then ``body.end`` or
``body.error`` (the client went away, the body passed the size limit). The Worker reads it
as it arrives (``request.body``, ``getReader()``, an ASGI app's ``receive()``) or whole
(``await request.text()``); every chunk the Worker takes is acknowledged (``body.ack``), so
the host sends no more than :data:`edgelet.flow.WINDOW` bytes ahead of the Worker.

A body that does not arrive whole makes the read raise :class:`RequestBodyError`: a Worker
that reads the whole body never acts on half of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any


class RequestBodyError(ConnectionError):
    """The request body did not arrive whole (the client went away, or it was too large)."""


class IncomingBody:
    """The chunks of one streamed request body, as the host delivers them."""

    __slots__ = ("body_id", "_channel", "_chunks", "_waiter", "_ended", "_error", "used", "received")

    @property
    def terminated(self) -> bool:
        """The host's last message for this body (end or error) has arrived."""
        return self._ended or self._error is not None

    def __init__(self, body_id: int, channel: Any) -> None:
        self.body_id = body_id
        self._channel = channel
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: str | None = None
        #: a reader has started (a body is read once)
        self.used = False
        self.received = 0

    # -- from the host ---------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.received += len(chunk)
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def fail(self, message: str) -> None:
        self._error = message
        self._chunks.clear()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- for the Worker ----------------------------------------------------------------------
    async def chunks(self) -> AsyncIterator[bytes]:
        """Each chunk as it arrives; raises RequestBodyError if the body ends early."""
        if self.used:
            raise TypeError("the request body was already read; a body can be read once "
                            "(keep the bytes of `await request.bytes()` to use them twice)")
        self.used = True
        while True:
            if self._error is not None:
                raise RequestBodyError(self._error)
            if self._chunks:
                chunk = self._chunks.popleft()
                self._channel.notify("body.ack", self.body_id, len(chunk))
                yield chunk
                continue
            if self._ended:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class IncomingBodies:
    """The streamed bodies of one isolate by id. A chunk may arrive before the fetch that
    owns the body has started, so a body is made by whichever comes first."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._bodies: dict[int, IncomingBody] = {}
        #: bodies whose fetch ended before the host's last message for them: what still
        #: comes for them is dropped (the host sends one body.end or body.error per body)
        self._dropped: set[int] = set()

    def get(self, body_id: int) -> IncomingBody:
        body = self._bodies.get(body_id)
        if body is None:
            body = self._bodies[body_id] = IncomingBody(body_id, self._channel)
        return body

    def discard(self, body_id: int) -> None:
        """The fetch that owned the body is over."""
        body = self._bodies.pop(body_id, None)
        if body is None or not body.terminated:
            self._dropped.add(body_id)

    def on_notify(self, method: str, args: list[Any]) -> bool:
        """``body.chunk`` / ``body.end`` / ``body.error``; False for other notifications."""
        if method not in ("body.chunk", "body.end", "body.error"):
            return False
        body_id = args[0]
        if body_id in self._dropped:
            if method != "body.chunk":
                self._dropped.discard(body_id)
            else:  # nobody reads it: let the host go on to its end
                self._channel.notify("body.ack", body_id, len(args[1]))
            return True
        body = self.get(body_id)
        if method == "body.chunk":
            body.feed(args[1])
        elif method == "body.end":
            body.end()
        else:
            body.fail(args[1])
        return True
