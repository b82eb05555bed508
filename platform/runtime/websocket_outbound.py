"""Outbound WebSockets from a Worker: ``workers.WebSocket(url)`` / ``js.WebSocket.new(url)``.

The connection is made from the isolate with the ``websockets`` client library (the same
library the host's server side runs on), and surfaces the browser's API: ``open``,
``message``, ``close`` and ``error`` events, ``send`` and ``close``. Sends made before the
connection is open wait for it, so a Worker can ``send`` right after constructing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edgelet.runtime.websocket import CLOSED, CLOSING, CONNECTING, OPEN, Event, WebSocket, spawn

log = logging.getLogger("edgelet.websocket")


class OutboundWebSocket(WebSocket):
    """A client connection from the Worker to ``url`` (``ws://`` or ``wss://``)."""

    def __init__(self, url: str, protocols: Any = None) -> None:
        url = str(url)
        if url.startswith("http://") or url.startswith("https://"):
            url = "ws" + url[4:]
        if not (url.startswith("ws://") or url.startswith("wss://")):
            raise ValueError(f"WebSocket({url!r}): the URL must start with ws:// or wss:// "
                             f"(or http:// / https://)")
        super().__init__("", server=True)
        self.url = url
        self._target = url
        self.mode = "outbound"
        self._protocols = [protocols] if isinstance(protocols, str) else list(protocols or [])
        self._conn: Any = None
        self._outbox: list[Any] = []
        self._opened = asyncio.get_running_loop().create_future()
        spawn(self._run())

    @classmethod
    def new(cls, url: str, protocols: Any = None) -> OutboundWebSocket:
        return cls(url, protocols)

    def accept(self) -> None:
        """Accepted already: an outbound socket's events go to its listeners."""

    async def opened(self) -> OutboundWebSocket:
        """Wait until the connection is open (raises if it could not be made)."""
        await asyncio.shield(self._opened)
        return self

    def send(self, message: Any) -> None:
        if self.readyState >= CLOSING:
            raise RuntimeError(f"send() on a closed WebSocket to {self.url}")
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"send() takes str or bytes, got {type(message).__name__}")
        if self._conn is None:
            self._outbox.append(message)
        else:
            spawn(self._send(message))

    async def _send(self, message: Any) -> None:
        try:
            await self._conn.send(message)
        except Exception as exc:  # the reader reports the close
            log.debug("send to %s failed: %s", self.url, exc)

    def close(self, code: int | None = 1000, reason: str | None = "") -> None:
        if self.readyState >= CLOSING:
            return
        self.readyState = CLOSING
        if self._conn is not None:
            spawn(self._conn.close(code or 1000, reason or ""))
        else:
            self._outbox.append((code or 1000, reason or ""))

    async def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed
        try:
            protocols: Any = self._protocols or None
            self._conn = await connect(self._target, subprotocols=protocols,
                                       open_timeout=30, max_size=None)
        except Exception as exc:
            self.readyState = CLOSED
            if not self._opened.done():
                self._opened.set_exception(ConnectionError(
                    f"WebSocket({self.url!r}) could not connect: {type(exc).__name__}: {exc}"))
                self._opened.exception()  # retrieved here: listeners are the usual reader
            await self.dispatch(Event("error", error=exc, message=str(exc)))
            await self.dispatch(Event("close", code=1006, reason=str(exc), wasClean=False))
            return
        self.protocol = self._conn.subprotocol or ""
        self.readyState = OPEN if self.readyState == CONNECTING else self.readyState
        self._opened.set_result(None)
        await self.dispatch(Event("open"))
        for item in self._outbox:
            if isinstance(item, tuple):
                await self._conn.close(*item)
            else:
                await self._send(item)
        self._outbox.clear()
        code, reason = 1006, ""
        try:
            async for message in self._conn:
                await self.dispatch(Event("message", data=message))
        except ConnectionClosed:
            pass
        except Exception as exc:
            await self.dispatch(Event("error", error=exc, message=str(exc)))
        received = self._conn.close_rcvd
        if received is not None:
            code, reason = received.code, received.reason
        await self.dispatch(Event("close", code=code, reason=reason,
                                  wasClean=received is not None))
