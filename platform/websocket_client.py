"""``await p.websocket("/path")``: a WebSocket client of the platform without a port.

It speaks ASGI to the platform's app in this process, the way ``p.fetch`` goes through
httpx's ASGI transport, so a test opens sockets to Workers with no server running.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit


class WebSocketRejected(ConnectionError):
    """The Worker answered the upgrade with an HTTP response instead of a 101."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"the WebSocket upgrade was answered {status}: "
                         f"{body[:300].decode('utf-8', 'replace')}")
        self.status = status
        self.headers = headers
        self.body = body


class WebSocketClosed(ConnectionError):
    """``receive()`` on a socket the other side closed; ``code`` and ``reason`` say how."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the WebSocket is closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class TestWebSocket:
    """One client connection: ``send``, ``receive``, ``close``; an async context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Any, path: str, host: str, headers: dict[str, str],
                 protocols: list[str]) -> None:
        parts = urlsplit(path)
        raw = [(b"host", host.encode()), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
               (b"sec-websocket-version", b"13"), (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if protocols:
            raw.append((b"sec-websocket-protocol", ", ".join(protocols).encode()))
        self._scope: dict[str, Any] = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
                       "path": parts.path or "/", "raw_path": (parts.path or "/").encode(),
                       "query_string": parts.query.encode(), "headers": raw, "client": None,
                       "server": ("127.0.0.1", 80), "subprotocols": protocols,
                       "extensions": {"websocket.http.response": {}}}
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None
        self.subprotocol: str | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None
        self.close_reason = ""

    async def connect(self) -> TestWebSocket:
        self._task = asyncio.ensure_future(self._app(self._scope, self._to_app.get,
                                                     self._from_app.put))
        await self._to_app.put({"type": "websocket.connect"})
        first = await self._next()
        if first["type"] == "websocket.accept":
            self.subprotocol = first.get("subprotocol")
            self.headers = list(first.get("headers") or [])
            return self
        if first["type"] == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next()
                body += part.get("body", b"")
                if not part.get("more_body"):
                    break
            raise WebSocketRejected(first["status"], list(first.get("headers") or []), body)
        raise WebSocketRejected(403, [], f"closed with {first.get('code')}".encode())

    async def _next(self) -> dict[str, Any]:
        getter = asyncio.ensure_future(self._from_app.get())
        assert self._task is not None
        done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        self._task.result()  # the app raised: re-raise here
        return {"type": "websocket.close", "code": 1006}

    async def send(self, message: str | bytes) -> None:
        if self.close_code is not None:
            raise WebSocketClosed(self.close_code, self.close_reason)
        key = "text" if isinstance(message, str) else "bytes"
        await self._to_app.put({"type": "websocket.receive", key: message})

    async def receive(self, timeout: float | None = 10.0) -> str | bytes:
        """The next message from the Worker; WebSocketClosed once it closed the socket."""
        if self.close_code is not None:
            raise WebSocketClosed(self.close_code, self.close_reason)
        message = await asyncio.wait_for(self._next(), timeout)
        if message["type"] == "websocket.close":
            self.close_code = int(message.get("code") or 1000)
            self.close_reason = str(message.get("reason") or "")
            await self._to_app.put({"type": "websocket.disconnect", "code": self.close_code,
                                    "reason": self.close_reason})
            raise WebSocketClosed(self.close_code, self.close_reason)
        text = message.get("text")
        return text if text is not None else message.get("bytes", b"")

    async def receive_json(self, timeout: float | None = 10.0) -> Any:
        import json
        return json.loads(await self.receive(timeout))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side and wait until the Worker has seen it."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            await self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=10)

    async def __aenter__(self) -> TestWebSocket:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
