"""WebSockets inside an isolate: ``WebSocketPair``, the server half a Worker accepts, and the
events the host delivers to it.

Why this shape: the client's TCP connection lives in the host (uvicorn owns it), so a
WebSocket here is a handle named by a token. ``send``/``close`` leave as channel
notifications (fire and forget, in order, no round trip per message); the host delivers the
client's messages back as the event ``websocket`` (``accept()`` mode, listeners run here) or
``durable_objects.websocket`` (hibernation mode, handled by the Durable Object half). A
``101`` response carries the token in the header :data:`TOKEN_HEADER`, which passes unread
through service bindings and Durable Object stubs; the host completes the upgrade when the
answer reaches the client's connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import secrets
from collections.abc import Callable, Iterator
from typing import Any, cast

log = logging.getLogger("edgelet.websocket")

#: the header of a 101 answer that names the socket to the host (stripped before the client)
TOKEN_HEADER = "x-edgelet-websocket"

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3

#: accepted server halves of this isolate by token (accept() mode and hibernatable ones of
#: live objects); the host's events find their socket here
_sockets: dict[str, WebSocket] = {}


#: a broadcast being gathered: [message, tokens] (see _queue_send)
_batch: list[Any] | None = None

#: edgelet.runtime.websocket_direct once the host has handed this isolate a connection
#: (imported then, not before: it brings the ``websockets`` library)
direct: Any = None

#: the output gate (set by the Durable Objects half, bindings/durable_objects/isolate/
#: output_gate.py, only while some object has writes not yet committed): called before a send
#: or close, it gives None (leave now) or a function registering a callback ``(committed)``
#: to run once the sending object's writes are committed or rolled back
output_gate: Callable[[], Callable[[Callable[[bool], None]], None] | None] | None = None

#: messages (str | bytes) and closes (``_Close``) held by the output gate, by token, in order
_held: dict[str, list[Any]] = {}

#: called with each socket ``accept()``-ed, to tie it to what holds it: the Durable Objects
#: half sets it so that an object with an accepted (non-hibernatable) socket is not evicted
#: while the socket is open, as on Cloudflare (a connected socket pins the object in memory)
on_accept: Callable[[WebSocket], None] | None = None


def _runtime() -> Any:
    from edgelet.runtime.isolate import Runtime
    runtime = Runtime.current
    if runtime is None:
        raise RuntimeError("WebSockets work only inside a Worker (no isolate runtime here)")
    return runtime


def _channel() -> Any:
    return _runtime().channel


def _notify(*args: Any) -> None:
    if _batch is not None:
        flush_sends()  # the sends before this close/accept/attach leave first
    _channel().notify("ws", *args)


def _queue_send(token: str, message: str | bytes) -> None:
    """Send one message: written at once to a socket this isolate serves itself
    (edgelet.runtime.websocket_direct, which frames a message sent to several sockets once);
    otherwise queued, and the same message object sent to several sockets in a row (a
    broadcast loop) leaves as one ``sendmany`` notification carrying the message once.

    Why: fan-out to 100 sockets was 100 notifications, each packing the message, unpacked
    and framed 100 times by the host; now the host frames it once (issue 16's benchmark).
    Order is kept: any other socket operation flushes the batch first, and the batch is
    flushed when the event that sent it ends, or at the end of the loop turn."""
    if output_gate is not None or _held:  # (two global lookups when nothing is gated)
        if _gated(token, message):
            return
    _send_now(token, message)


def _send_now(token: str, message: str | bytes) -> None:
    global _batch
    d = direct
    if d is not None:
        sock = d.connections.get(token)
        if sock is not None:
            if _batch is not None:
                flush_sends()  # what was queued for the host's sockets leaves first
            d.send(sock, message)
            return
    batch = _batch
    if batch is not None:
        if batch[0] is message:
            batch[1].append(token)
            return
        flush_sends()
    loop = _runtime()._loop  # raises outside an isolate, before anything is queued
    _batch = [message, [token]]
    loop.call_soon(flush_sends)


class _Close:
    """A close held by the output gate behind the messages sent before it."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


def _gated(token: str, item: str | bytes | _Close) -> bool:
    """Hold ``item`` for ``token`` when the output gate is shut for the sender (its object
    has writes not yet committed), or when earlier items of the socket are still held (the
    order of a socket's messages never changes); False when it may leave now."""
    held = _held.get(token)
    if held is not None:
        held.append(item)
        return True
    gate = output_gate
    wait = gate() if gate is not None else None
    if wait is None:
        return False
    _held[token] = [item]
    wait(lambda committed: _release(token, committed))
    return True


def _release(token: str, committed: bool) -> None:
    """The writes ``token``'s held items waited for are committed: send them, in order; or
    they were rolled back: drop them (they spoke of state that is gone)."""
    items = _held.pop(token, None)
    if not items:
        return
    if not committed:
        log.warning("WebSocket %s: %d message(s) sent after a storage write were dropped: the "
                    "write failed to commit", token[:8], len(items))
        return
    for item in items:
        if type(item) is _Close:
            _close_now(token, item.code, item.reason)
        else:
            _send_now(token, item)


def _close_now(token: str, code: int, reason: str) -> None:
    flush_sends()  # what was sent before the close leaves first
    if direct is None or not direct.close(token, code, reason):
        _notify("close", token, code, reason)


def flush_sends() -> None:
    """Hand the gathered sends to the channel (one ``send`` or one ``sendmany``); the end
    of an event also drops the frame kept for a broadcast."""
    global _batch
    d = direct
    if d is not None and d._last_message is not None:
        d._last_message, d._last_frame = None, b""  # (forget_frame, inlined: every event)
    batch, _batch = _batch, None
    if batch is None:
        return
    message, tokens = batch
    if d is not None and d.connections:  # sockets served here: written now
        tokens = d.send_frames(tokens, message)
        if not tokens:
            return
    if len(tokens) == 1:
        _channel().notify("ws", "send", tokens[0], message)
    else:
        _channel().notify("ws", "sendmany", tokens, message)


class Event:
    """What a listener receives: ``type`` and, by type, ``data``, ``code``/``reason``/
    ``wasClean`` or ``error``/``message``."""

    def __init__(self, type: str, **fields: Any) -> None:  # noqa: A002 - the DOM's name
        self.type = type
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"<{self.type} event {self.__dict__}>"


class WebSocket:
    """One end of a WebSocket as a Worker sees it (Cloudflare's ``WebSocket``)."""

    CONNECTING, OPEN, CLOSING, CLOSED = CONNECTING, OPEN, CLOSING, CLOSED

    def __init__(self, token: str, *, server: bool) -> None:
        self.token = token
        self.server = server
        #: "accept" (listeners here) or "hibernate" (the Durable Object's handlers)
        self.mode: str | None = None
        self.readyState = CONNECTING
        self.url: str | None = None
        self.protocol = ""
        self.extensions = ""
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._attachment: bytes | None = None
        #: tags given to ctx.acceptWebSocket (hibernation mode)
        self.tags: list[str] = []
        #: the table of its Durable Object it is kept in (left on close): the object's
        #: hibernatable sockets, or the accept()-ed ones that pin it in memory
        self._owner: dict[str, WebSocket] | None = None

    # -- the standard API ---------------------------------------------------------------
    def accept(self) -> None:
        """Take this server half: the Worker handles its events with ``addEventListener``."""
        self._check_server("accept()")
        if self.mode is not None:
            raise RuntimeError("this WebSocket was already accepted; accept() it once, and do "
                               "not both accept() it and pass it to ctx.acceptWebSocket()")
        self.mode = "accept"
        self.readyState = OPEN
        _sockets[self.token] = self
        if on_accept is not None:
            on_accept(self)
        _notify("accept", self.token, None, [])

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes) message to the client."""
        if not self.server:
            self._check_server("send()")
        if self.mode is None:
            raise RuntimeError("send() on a WebSocket that was not accepted; call "
                               "server.accept() or ctx.acceptWebSocket(server) first")
        if self.readyState >= CLOSING:
            raise RuntimeError(f"send() on a closed WebSocket (state {self.readyState}); "
                               f"check readyState or stop sending after close")
        cls = type(message)
        if cls is not str and cls is not bytes:  # (the common case tested first: a broadcast
            message = _as_message(message)       # sends one message to every socket)
        _queue_send(self.token, cast("str | bytes", message))

    def close(self, code: int | None = 1000, reason: str | None = "") -> None:
        """Close the connection with ``code`` (1000, or 3000-4999) and a short ``reason``."""
        if self.readyState >= CLOSING:
            return  # closing twice is harmless, as in Cloudflare's chat room
        code = 1000 if code is None else code
        if not isinstance(code, int) or not (code == 1000 or 3000 <= code <= 4999
                                             or 1001 <= code <= 1014 and code not in (1004, 1005, 1006)):
            raise ValueError(f"close(): invalid close code {code!r}; use 1000 or 3000-4999")
        reason = reason or ""
        if len(reason.encode()) > 123:
            raise ValueError("close(): the reason is over 123 bytes; shorten it")
        self.readyState = CLOSING
        if self._owner is not None:
            self._owner.pop(self.token, None)
        if self.mode is not None:
            if (output_gate is not None or _held) and _gated(self.token, _Close(code, reason)):
                return  # after the messages before it, once the writes are committed
            _close_now(self.token, code, reason)

    def addEventListener(self, type: str, listener: Callable[..., Any]) -> None:  # noqa: N802,A002
        if type not in ("message", "close", "error", "open"):
            raise ValueError(f"addEventListener(): unknown event {type!r}; WebSockets have "
                             f"'message', 'close', 'error' (and 'open' for outbound ones)")
        self._listeners.setdefault(type, []).append(listener)

    def removeEventListener(self, type: str, listener: Callable[..., Any]) -> None:  # noqa: N802,A002
        listeners = self._listeners.get(type, [])
        if listener in listeners:
            listeners.remove(listener)

    def serializeAttachment(self, value: Any) -> None:  # noqa: N802
        """Keep a copy of ``value`` with the socket; it survives hibernation."""
        try:
            blob = pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise TypeError(f"serializeAttachment(): a {type(value).__name__} cannot be kept "
                            f"(it cannot be pickled: {exc}); attach plain data") from None
        if len(blob) > 16 * 1024:
            raise ValueError(f"serializeAttachment(): the value is {len(blob)} bytes, over the "
                             f"limit of 16384; keep large state in storage instead")
        self._attachment = blob
        if self.mode == "hibernate":
            _notify("attach", self.token, blob)

    def deserializeAttachment(self) -> Any:  # noqa: N802
        """The value given to ``serializeAttachment`` (a copy), or None."""
        return None if self._attachment is None else pickle.loads(self._attachment)

    add_event_listener = addEventListener
    remove_event_listener = removeEventListener
    serialize_attachment = serializeAttachment
    deserialize_attachment = deserializeAttachment

    @property
    def ready_state(self) -> int:
        return self.readyState

    def _check_server(self, what: str) -> None:
        if not self.server:
            raise RuntimeError(f"{what} on the client half of a WebSocketPair: return the client "
                               f"in Response(None, status=101, web_socket=client) and use the "
                               f"server half in the Worker")

    # -- events from the host -------------------------------------------------------------
    async def dispatch(self, event: Event) -> None:
        """Run this socket's listeners for ``event`` (sync or async), in order."""
        if event.type == "close":
            self.readyState = CLOSED
        for listener in list(self._listeners.get(event.type, ())):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("WebSocket %s listener failed", event.type)

    def __repr__(self) -> str:
        half = "server" if self.server else "client"
        return f"<WebSocket {half} {self.token[:8]} state={self.readyState}>"


def _as_message(message: Any) -> str | bytes:
    """What ``send`` writes for a value that is not exactly str or bytes: bytes of a
    bytearray, memoryview or a JS-style buffer (``to_bytes()``), a str or bytes subclass as is;
    TypeError naming the type for anything else."""
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, (str, bytes)):
        return message
    if hasattr(message, "to_bytes"):
        return bytes(message.to_bytes())
    raise TypeError(f"send() takes str or bytes, got {type(message).__name__}; "
                    f"use json.dumps(data) for structured messages")


class WebSocketPair:
    """``WebSocketPair()`` (or ``WebSocketPair.new()``): ``client, server = pair``.

    Also ``pair[0]``/``pair[1]``, ``pair.object_values()`` and ``js.Object.values(pair)``,
    the forms Python Workers use."""

    def __init__(self) -> None:
        token = secrets.token_hex(16)
        self.client = WebSocket(token, server=False)
        self.server = WebSocket(token, server=True)

    @classmethod
    def new(cls) -> WebSocketPair:
        return cls()

    def object_values(self) -> list[WebSocket]:
        return [self.client, self.server]

    def object_keys(self) -> list[str]:
        return ["0", "1"]

    def to_py(self) -> list[WebSocket]:
        return self.object_values()

    def __iter__(self) -> Iterator[WebSocket]:
        return iter((self.client, self.server))

    def __getitem__(self, index: int | str) -> WebSocket:
        return self.object_values()[int(index)]

    def __len__(self) -> int:
        return 2


class WebSocketRequestResponsePair:
    """``ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))``: the
    host answers ``request`` with ``response`` without waking the object."""

    def __init__(self, request: str, response: str) -> None:
        if not isinstance(request, str) or not isinstance(response, str):
            raise TypeError("WebSocketRequestResponsePair(request, response) takes two strings")
        self.request = request
        self.response = response

    @classmethod
    def new(cls, request: str, response: str) -> WebSocketRequestResponsePair:
        return cls(request, response)


# -- the 101 answer ---------------------------------------------------------------------------
def upgrade_headers(resp: Any) -> list[list[str]]:
    """Headers of a 101 answer: the Worker's, plus the token that names its socket.

    Raise TypeError (a 500 naming the mistake) for a 101 without ``web_socket``."""
    ws = getattr(resp, "web_socket", None)
    if not isinstance(ws, WebSocket):
        got = "no web_socket" if ws is None else f"web_socket={type(ws).__name__}"
        raise TypeError(
            f"the handler returned Response(status=101) with {got}: a 101 needs the client half "
            f"of a WebSocketPair, e.g. `client, server = WebSocketPair(); server.accept(); "
            f"return Response(None, status=101, web_socket=client)`")
    if ws.server:
        raise TypeError("Response(status=101, web_socket=...) got the server half of the "
                        "WebSocketPair; return the client half and keep the server half")
    headers = [h for h in resp.headers.to_list() if h[0] != TOKEN_HEADER]
    headers.append([TOKEN_HEADER, ws.token])
    return headers


def client_from_headers(headers: Any) -> WebSocket | None:
    """The client half named by a 101 answer that came back from another Worker or object."""
    token = headers.get(TOKEN_HEADER)
    return None if token is None else WebSocket(token, server=False)


# -- events from the host ---------------------------------------------------------------------
async def on_event(payload: list[Any]) -> bool:
    """``websocket`` event: ``[token, kind, data, code, reason]`` for an ``accept()`` socket.

    Returns False when this isolate does not know the socket (it was restarted): the host
    then closes the connection."""
    token, kind, data, code, reason = payload[:5]
    ws = _sockets.get(token)
    if ws is None:
        return False
    await ws.dispatch(make_event(kind, data, code, reason))
    flush_sends()
    if kind in ("close", "error"):
        _sockets.pop(token, None)
        if ws._owner is not None:  # no longer pins its Durable Object
            ws._owner.pop(token, None)
    return True


def make_event(kind: str, data: Any, code: Any, reason: Any) -> Event:
    if kind == "message":
        return Event("message", data=data)
    if kind == "close":
        return Event("close", code=code, reason=reason or "", wasClean=code not in (1005, 1006))
    return Event("error", error=data, message=str(data))


def adopt(conn: Any, data: bytes, meta: dict[str, Any]) -> None:
    """The handoff callback of kind ``"ws"``: the host hands this isolate a client's
    connection (edgelet.runtime.websocket_direct, imported on the first one)."""
    from edgelet.runtime import websocket_direct
    websocket_direct.adopt(conn, data, meta)


def forget(token: str) -> None:
    _sockets.pop(token, None)


def register(ws: WebSocket) -> None:
    _sockets[ws.token] = ws


def spawn(coro: Any) -> asyncio.Task[Any]:
    """Keep a task referenced until it ends (outbound sockets' readers)."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


_tasks: set[asyncio.Task[Any]] = set()
