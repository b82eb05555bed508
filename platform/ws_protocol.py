"""uvicorn's sans-I/O ``websockets`` protocol, trimmed for many idle connections.

Why: a hibernated WebSocket costs the host only what its connection holds, and 10,000 of
them must fit in the memory budget (issue 16: under 300 MB for the whole process tree).
tracemalloc of ``edgelet dev`` holding idle sockets showed uvicorn's connection keeping,
for its whole life, things only the handshake needs or that are larger than they need be:

- the handshake's ``Request`` and ``Response`` (each with a websockets ``Headers``), kept
  in ``self.request`` / ``self.response`` after the 101 is written;
- an ``asyncio.Queue`` for the ASGI ``receive`` side (three deques and an ``Event`` with a
  fourth: ~3 KB before any message) and an ``asyncio.Event`` for write flow control.

This subclass drops the first once the handshake is sent, and replaces the second with a
list-backed queue and a flag that allocate nothing while idle. Framing, limits, pings and
close handling are uvicorn's and websockets', unchanged.

Per-message costs go too (py-spy of the echo and fan-out benchmarks): uvicorn stops reading the
socket after every message until the app has taken it (two epoll changes per message);
here it stops only when a message arrives while the previous one is still untaken, so at
most two wait, as before plus one. And the host's sends need no task each: the scope's
``edgelet.send_now`` extension writes a message at once when the connection is open and
its buffer is not full, and says False otherwise (then the ASGI ``send`` is used); a
broadcast's frame is serialized once (:func:`server_frame`) and written to each connection
by ``send_frame_now``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN

from edgelet.runtime.websocket_direct import parser_at_frame_start
from edgelet.websockets import SEND_NOW


def server_frame(data: str | bytes) -> bytes:
    """The bytes of one unfragmented server frame carrying ``data``, serialized by
    ``websockets``: a server's frames are unmasked and, without extensions (per-message
    deflate is off, see edgelet.websockets.websocket_options), the same on every
    connection, so a broadcast is framed once and written to each client as is."""
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, data).serialize(mask=False, extensions=[])


def close_frame(code: int, reason: str = "") -> bytes:
    """The bytes of a server close frame: the host closing a socket it handed to an isolate
    that is gone (edgelet.websockets)."""
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False, extensions=[])


class _Inbox:
    """The subset of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``), for one consumer: a list made on the first message and one waiter."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0


class _Flag:
    """``asyncio.Event``'s ``set``/``clear``/``wait``/``is_set``, with the waiters' list
    made only while someone waits (writes paused by a full socket buffer)."""

    __slots__ = ("_on", "_waiters")

    def __init__(self, on: bool = True) -> None:
        self._on = on
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._on

    def set(self) -> None:
        self._on = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._on = False

    async def wait(self) -> bool:
        if self._on:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol holding less per idle connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SEND_NOW] = self

    def send_receive_event_to_app(self) -> None:
        if self.read_paused or not self.queue.empty():
            super().send_receive_event_to_app()  # pauses reading until the app catches up
            return
        self.read_paused = True  # the app has taken everything: read on (uvicorn would pause)
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = False

    def send_now(self, data: str | bytes) -> bool:
        """Write one message now if the connection is open and its buffer is not full;
        False when the caller must go through ``send`` (which waits, or raises)."""
        if (not self.handshake_complete or self.initial_response is not None or self.close_sent
                or self.disconnected or not self.writable.is_set()):
            return False
        try:
            if isinstance(data, str):
                self.conn.send_text(data.encode())
            else:
                self.conn.send_binary(data)
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def send_frame_now(self, frame: bytes) -> bool:
        """Write a frame made by :func:`server_frame` now, under the conditions of
        ``send_now`` (and only on a connection without extensions, whose frames it matches);
        False when the caller must send the message another way."""
        conn = self.conn
        if (not self.handshake_complete or self.initial_response is not None or self.close_sent
                or self.disconnected or not self.writable.is_set() or conn.extensions
                or conn.state is not OPEN or conn.expect_continuation_frame):
            return False
        self.transport.write(frame)
        return True

    def between_frames(self) -> bool:
        """True when the connection is open and nothing the client sent is read but not
        yet taken by the app: no message waiting, no fragment, no byte in the parser's
        buffer, and the parser waiting at the start of a frame. Only then can the
        connection be handed to an isolate (edgelet.websockets) without losing a byte.

        Why the generator is looked at: ``websockets``' parser consumes a frame's header
        before its payload has arrived, so an empty buffer alone does not say that no frame
        is half read; ``parse()`` waits in ``StreamReader.at_eof`` only between frames
        (websockets 17, pinned < 18; any other shape reads as "not between frames", and
        the socket then simply stays in the host)."""
        conn = self.conn
        if (not self.handshake_complete or self.initial_response is not None or self.close_sent
                or self.disconnected or conn.state is not OPEN or not self.queue.empty()
                or getattr(self, "frames", None) or conn.reader.buffer
                or getattr(conn, "current_size", None) is not None):
            return False
        return parser_at_frame_start(conn.parser)  # ServerProtocol.parse -> Protocol.parse -> ...

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # the 101 (or the refusal) is written: the handshake's objects are not read again
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
