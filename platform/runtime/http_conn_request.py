"""What the isolate's HTTP connection (edgelet.runtime.http_conn) keeps per request: the
parsed head, the body as it arrives, and how far the answer got; and the body source a
Worker reads a large request body from while it still arrives.

Why apart from the connection: the connection is a protocol of parser callbacks and
writes; these are the state those share with the request's task, and the one reader of that
state the Worker sees (``Request._source``), whose flow control is easier to follow here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgelet.runtime.http_conn import IsolateConnection

#: body bytes buffered and not yet read by the Worker before the connection stops reading
HIGH_WATER = 64 * 1024


class ConnRequest:
    """One request on the connection, from its head to its response."""

    __slots__ = ("method", "target", "headers", "keep_alive", "expect", "host", "scheme", "refused",
                 "chunks", "size", "buffered", "declared", "has_body", "complete", "too_large",
                 "source", "answered", "started", "version")

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.headers: list[tuple[str, str]] = []
        self.version = "1.1"
        self.keep_alive = True
        self.declared: int | None = None
        self.has_body = False
        self.chunks: list[bytes] = []
        self.size = 0  # body bytes received
        self.buffered = 0  # body bytes received and not yet read
        self.complete = False
        self.too_large = False
        self.source: BodySource | None = None
        self.answered = False  # the response was written (or abandoned): later body bytes are dropped
        self.started = False  # a response byte was written
        self.refused: str | None = None
        self.expect = False
        self.host: str | None = None
        self.scheme = "http"


class BodySource:
    """A request body still arriving, read as the Worker reads it: the ``Request._source``
    interface of edgelet.runtime.request_body.IncomingBody. Over the limit or cut short, the
    read raises RequestBodyError and ``failure`` says which ("too_large", "gone")."""

    def __init__(self, conn: IsolateConnection, req: ConnRequest) -> None:
        self._conn = conn
        self._req = req
        self.max_body = conn.server.max_body
        self.declared = req.declared
        self.used = False
        self.failure: str | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def size(self) -> int:
        return self._req.size

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def chunks(self) -> Any:
        from edgelet.runtime.request_body import RequestBodyError
        if self.used:
            raise TypeError("the request body was already read; a body can be read once "
                            "(keep the bytes of `await request.bytes()` to use them twice)")
        self.used = True
        req, conn = self._req, self._conn
        while True:
            if req.too_large:
                self.failure = "too_large"
                raise RequestBodyError(f"the request body is larger than the limit of {self.max_body} "
                                       f"bytes (--max-body-size); the client is answered 413")
            if req.chunks:
                data = req.chunks[0] if len(req.chunks) == 1 else b"".join(req.chunks)
                req.chunks.clear()
                req.buffered = 0
                conn.resume_reading()
                # pieces of at most HIGH_WATER, as a stream reader gets them from the network
                # (and from the host path), however much one socket read brought in
                for start in range(0, len(data), HIGH_WATER):
                    yield data[start:start + HIGH_WATER] if len(data) > HIGH_WATER else data
                continue
            if req.complete:
                return
            if conn.lost:
                self.failure = "gone"
                raise RequestBodyError(f"the client went away after {req.size} of "
                                       f"{self.declared if self.declared is not None else 'its'} "
                                       f"body bytes; the request body is incomplete")
            self._waiter = conn.loop.create_future()
            conn.resume_reading()
            await self._waiter
            self._waiter = None

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


__all__ = ["BodySource", "ConnRequest", "HIGH_WATER"]
