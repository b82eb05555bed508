"""uvicorn's httptools protocol, with the writes of one response joined into one send().

Why: an ASGI response is at least two messages (``http.response.start``, then the body),
and uvicorn writes each to the socket as it comes: two ``send()`` system calls and, with
TCP_NODELAY, two packets per response. Under load those calls were half of the host's
CPU time per request (py-spy of ``edgelet dev`` under wrk); joined, a hello-world served
12% more requests/s (bench/RESULTS.md). Here the connection's writes
are collected and handed to the socket once, at the end of the event-loop iteration that
made them; the bytes and their order are unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: pending bytes past which writes go out at once rather than at the end of the iteration
_FLUSH_AT = 64 * 1024


class CoalescingTransport:
    """A transport that joins the writes of one loop iteration; everything else is the
    real transport's (flow control, ``get_extra_info``, ...)."""

    __slots__ = ("_transport", "_loop", "_pending", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        pending = self._pending
        if not pending:
            self._loop.call_soon(self.flush)
        pending.append(data)
        self._size += len(data)
        if self._size > _FLUSH_AT and len(pending) > 2:
            # a stream written faster than the loop turns: hand it over now, so that the
            # real transport's flow control (pause_writing) sees it as before
            self.flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()  # a response followed by "connection: close" must still go out
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the real transport
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
