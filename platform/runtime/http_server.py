"""An isolate serving its own Worker's HTTP connections (the host half is edgelet.http_handoff).

Why: with the host between client and isolate, each request costs an HTTP parse and a
channel round trip in the host on top of the isolate's work; the host alone cost more than
a whole request of a bare uvicorn app (bench/RESULTS.md, issue 20). Here the host accepts a
connection, reads its first request head and, when the request is a plain one for this
Worker, hands the connection over (edgelet.handoff) with the bytes it read; this isolate then
parses and answers every request on it, through the host's own protocol class
(edgelet.http_protocol: header cap 431, header deadline 408, keep-alive timeout) and the
host's checks (edgelet.http_request: Host validation 400; the body limit 413, mid-stream too;
the request timeout 504). A request that is not its own (``/cdn-cgi/``, another Worker, an
upgrade) is handed back to the host with its bytes, and the host serves it as before.

Per connection this isolate keeps a slot of the table it shares with the host
(edgelet.http_slots) up to date: idle, a request in flight, a response started. If the
isolate dies, the host answers the in-flight requests with the 503 naming the crash and
closes the idle connections; if its loop is stuck past the request timeout, the host
answers 504. Request log lines go to the host as one notification per loop iteration.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import traceback
import urllib.parse
from email.utils import formatdate
from typing import Any, cast

from edgelet import http_slots
from edgelet.handoff import MAX_DATA, HandoffError
from edgelet.http_protocol import CoalescingHttpToolsProtocol
from edgelet.http_request import (
    STREAM_AFTER,
    BadRequest,
    _checked_host,
    _content_length,
    _may_have_body,
    _not_an_upgrade,
    _raw_headers,
    _url,
    request_host,
)
from edgelet.runtime import handoff

#: how often the loop proves it is alive (the slot table's heartbeat) and checks timeouts
TICK_S = 0.05

_server: HttpServer | None = None


async def on_call(runtime: Any, method: str, args: list[Any]) -> Any:
    """The host's ``http.*`` calls: ``http.setup`` (before the first connection of this
    process) and ``http.release`` (a reload: stop taking requests, see HttpServer.release)."""
    global _server
    if method == "http.setup":
        if _server is None:
            _server = HttpServer(runtime, args[0])
            handoff.register("http", _server.connection)
        return True
    if method == "http.release":
        if _server is not None:
            _server.release()
        return True
    raise LookupError(f"unknown call {method!r}")


class _HandBack(Exception):
    """Raised from the parser's headers callback: this request is the host's to serve."""


class HttpServer:
    """The connections of this isolate's Worker, served here."""

    def __init__(self, runtime: Any, settings: dict[str, Any]) -> None:
        import uvicorn
        from uvicorn.server import ServerState
        self.runtime = runtime
        self.slots = http_slots.Slots(settings["slots"])
        self.worker: str = settings["worker"]
        self.primary: str = settings["primary"]
        self.workers = frozenset(settings["workers"])
        self.max_body: int = settings["max_body"]
        self.request_timeout: float = settings["request_timeout"]
        self.log_requests: bool = settings["log_requests"]
        #: a reload is under way: connections stop after their current request
        self.releasing = False
        #: connection -> when its request is due (time.monotonic())
        self.deadlines: dict[IsolateHttpProtocol, float] = {}
        self._by_host: dict[str, bool] = {}
        self._logs: list[list[Any]] = []
        self._closed: list[int] = []
        self.loop = asyncio.get_running_loop()
        protocol = IsolateHttpProtocol.configured(header_timeout=settings["header_timeout"],
                                                  max_header_bytes=settings["max_header_bytes"])
        self.config = uvicorn.Config(self.app, loop="none", lifespan="off", access_log=False,
                                     interface="asgi3", log_level="warning", log_config=None,
                                     http=protocol, ws="none", timeout_keep_alive=settings["keep_alive"])
        self.config.load()
        #: uvicorn's X-Forwarded-* handling (as on the host), entered only when a request
        #: carries such a header: an extra coroutine frame per request otherwise
        self._proxied = self.config.loaded_app
        self.config.loaded_app = self._entry
        self.state = ServerState()
        self._date = 0.0
        self._tick()

    # -- connections --------------------------------------------------------------------------
    def connection(self, conn: socket.socket, data: bytes, meta: dict[str, Any]) -> None:
        """A connection the host handed over, with the bytes it read of its first request."""
        conn.setblocking(False)
        keep = conn.dup()  # to end the connection for the client: the host holds a copy too

        def make() -> IsolateHttpProtocol:
            cls = cast("type[IsolateHttpProtocol]", self.config.http_protocol_class)
            protocol = cls(config=self.config, server_state=self.state, app_state={})
            protocol.setup(self, meta["id"], meta["slot"], keep, data)
            return protocol

        task = self.loop.create_task(self.loop.connect_accepted_socket(make, conn))

        def failed(t: asyncio.Task[Any]) -> None:  # never served: our copy goes too
            if not t.cancelled() and t.exception() is not None:
                keep.close()
        task.add_done_callback(failed)

    def release(self) -> None:
        """A reload: idle connections stop being read now, busy ones after their response;
        the host gives them to the next isolate (edgelet.http_slots.RELEASED)."""
        self.releasing = True
        for protocol in list(self.state.connections):
            if isinstance(protocol, IsolateHttpProtocol) and protocol.idle:
                protocol.release()

    def closed(self, conn_id: int) -> None:
        """Tell the host a connection ended (joined per loop iteration)."""
        if not self._closed:
            self.loop.call_soon(self._flush_closed)
        self._closed.append(conn_id)

    def _flush_closed(self) -> None:
        ids, self._closed = self._closed, []
        self.runtime.channel.notify("http.closed", ids)

    def log(self, line: list[Any]) -> None:
        """A request's log line for the host (joined per loop iteration)."""
        if not self._logs:
            self.loop.call_soon(self._flush_logs)
        self._logs.append(line)

    def _flush_logs(self) -> None:
        lines, self._logs = self._logs, []
        self.runtime.channel.notify("http.log", lines)

    def _tick(self) -> None:
        self.slots.beat()
        now = time.time()
        if now - self._date >= 1.0:  # as uvicorn's server does on the host: date + server headers
            self._date = now
            self.state.default_headers = [(b"date", formatdate(now, usegmt=True).encode())] \
                + self.config.encoded_headers
        if self.deadlines:
            now = time.monotonic()
            for protocol, due in list(self.deadlines.items()):
                if due <= now:
                    del self.deadlines[protocol]
                    protocol.timed_out(self.request_timeout)
        self.loop.call_later(TICK_S, self._tick)

    def owns(self, protocol: IsolateHttpProtocol) -> bool:
        """Whether this isolate answers the request whose head ``protocol`` just parsed: not
        an upgrade, not ``/cdn-cgi/``, for this Worker (a bad Host is answered 400 here)."""
        if protocol.parser.should_upgrade():
            return False
        target = protocol.url
        if target.startswith(b"/cdn-cgi/"):
            return False
        if not target.startswith(b"/"):
            return True  # not a path: 400 here
        if b"%" in target:
            path = target.split(b"?", 1)[0].decode("latin-1")
            if urllib.parse.unquote(path).startswith("/cdn-cgi/"):
                return False
        value = None
        for key, v in protocol.headers:
            if key == b"host":
                if value is not None:
                    return True  # several Host headers: 400 here
                value = v
        if not value:
            server = protocol.server
            if not server:
                return self.primary == self.worker
            value = f"{server[0]}:{server[1]}".encode()
        try:
            host = _checked_host(value)
        except BadRequest:
            return True
        cast("dict[str, Any]", protocol.scope)["edgelet.host"] = host  # request_host's answer, found already
        mine = self._by_host.get(host)
        if mine is None:
            name = host.split(":", 1)[0].lower()
            worker = self.primary
            if name.endswith(".localhost") and name[: -len(".localhost")] in self.workers:
                worker = name[: -len(".localhost")]
            mine = worker == self.worker
            if len(self._by_host) < 256:
                self._by_host[host] = mine
        return mine

    # -- the request --------------------------------------------------------------------------
    def _entry(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        for key, _ in scope["headers"]:
            if key.startswith(b"x-forwarded-"):
                return self._proxied(scope, receive, send)
        return self.app(scope, receive, send)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """One request of this Worker: what edgelet.server.EdgeletApp does for it on the host."""
        conn: IsolateHttpProtocol = scope["edgelet.conn"]
        conn.running = scope["edgelet.cycle"]
        method, path = scope["method"], scope["path"]
        refused = scope.get("edgelet.refused")
        if refused is not None:
            await _plain(send, 503, refused, close=True)
            return
        started = time.perf_counter()
        try:
            host = scope.get("edgelet.host") or request_host(scope)
        except BadRequest as exc:
            if self.log_requests:
                self.log(["", f"{method} {path} 400 ({exc})"])
            await _plain(send, 400, str(exc))
            return
        body: Any = b""
        source = None
        if _may_have_body(scope["headers"]):
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            if not isinstance(body, bytes):
                source, body = body, b""
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        status, out_headers, out_body = await self._fetch(conn, [method, _url(scope, host), headers, body], source)
        if conn.abandoned:  # answered 504 (or by the host) meanwhile
            if not isinstance(out_body, bytes):
                await _close_stream(out_body)
            return
        if source is not None and source.failure is not None:
            if not isinstance(out_body, bytes):
                await _close_stream(out_body)
            if source.failure == "gone":
                return
            await self._too_large(scope, send)
            return
        if status == 101:
            if not isinstance(out_body, bytes):
                await _close_stream(out_body)
            status, out_headers, out_body = _not_an_upgrade(self.worker, path)
        if not conn.responding(not isinstance(out_body, bytes)):
            return
        raw = _raw_headers(out_headers)
        if isinstance(out_body, bytes):
            await send({"type": "http.response.start", "status": status,
                        "headers": raw + [(b"content-length", str(len(out_body)).encode())]})
            await send({"type": "http.response.body", "body": out_body})
        else:
            await self._send_stream(conn, send, status, raw, out_body)
        if self.log_requests:
            self.log([self.worker, method, path, status, (time.perf_counter() - started) * 1000,
                      source is not None])

    async def _fetch(self, conn: IsolateHttpProtocol, wire: list[Any], source: Any) -> list[Any]:
        """Run the fetch handler as Runtime.on_fetch does; a streamed body stays a Response."""
        runtime = self.runtime
        request = runtime._request_from_wire(wire)
        if source is not None:
            request._source = source
        self.deadlines[conn] = time.monotonic() + self.request_timeout
        try:
            fn, ctx = runtime.handler("fetch")
            resp = await runtime._call_handler(fn, request, runtime.env, ctx)
            if getattr(resp, "_stream", None) is not None:
                return [resp.status, resp.headers.to_list(), resp]
            return runtime._response_to_wire(resp)
        except MemoryError:
            os.write(2, b"edgelet: Worker exceeded its memory limit during fetch\n")
            os._exit(71)
        except Exception as exc:
            return runtime.uncaught_in_fetch(request, exc)
        finally:
            self.deadlines.pop(conn, None)

    async def _send_stream(self, conn: IsolateHttpProtocol, send: Any, status: int,
                           headers: list[tuple[bytes, bytes]], resp: Any) -> None:
        """A body the Worker streams, chunk by chunk (chunked encoding); uvicorn's send waits
        while the client is slow (backpressure), and a client gone ends the Worker's stream."""
        from edgelet.runtime.http_types import chunks_of
        chunks = chunks_of(resp)
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if conn.gone:
                    return
            await send({"type": "http.response.body", "body": b""})
        except Exception:
            self.runtime.log("error", f"Uncaught exception in the streamed body of "
                                      f"{resp.url or 'a response'}\n{traceback.format_exc()}")
            conn.transport.close()
        finally:
            await cast(Any, chunks).aclose()  # an async generator

    async def _read_body(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """edgelet.server.EdgeletApp._read_body: bytes, an AsgiBody still arriving, or None."""
        declared = _content_length(scope["headers"])
        if declared is not None and declared > self.max_body:
            await self._too_large(scope, send)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self.log_requests:
                    self.log(["", f"{scope['method']} {scope['path']}: the client went away after {size} "
                                  f"of {declared if declared is not None else 'its'} body bytes; not run"])
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(scope, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if size > STREAM_AFTER:
                return AsgiBody(b"".join(chunks), receive, self.max_body, declared)

    async def _too_large(self, scope: dict[str, Any], send: Any) -> None:
        if self.log_requests:
            self.log(["", f"{scope['method']} {scope['path']} 413 (body over {self.max_body} bytes)"])
        await _plain(send, 413, f"request body is larger than the limit of {self.max_body} bytes; send "
                                f"less, or start `edgelet dev` with a larger --max-body-size")


class AsgiBody:
    """A request body still arriving, read from the connection as the Worker reads it (the
    ``Request._source`` interface of edgelet.runtime.request_body.IncomingBody); over the
    limit or cut short, the read raises RequestBodyError and ``failure`` says which."""

    def __init__(self, first: bytes, receive: Any, max_body: int, declared: int | None) -> None:
        self._first = first
        self._receive = receive
        self.max_body = max_body
        self.declared = declared
        self.size = len(first)
        self.used = False
        self.failure: str | None = None
        self._ended = False

    async def chunks(self) -> Any:
        from edgelet.runtime.request_body import RequestBodyError
        if self.used:
            raise TypeError("the request body was already read; a body can be read once "
                            "(keep the bytes of `await request.bytes()` to use them twice)")
        self.used = True
        first, self._first = self._first, b""
        if first:
            yield first
        while not self._ended:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.failure = "gone"
                raise RequestBodyError(f"the client went away after {self.size} of "
                                       f"{self.declared if self.declared is not None else 'its'} "
                                       f"body bytes; the request body is incomplete")
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.max_body:
                self.failure = "too_large"
                raise RequestBodyError(f"the request body is larger than the limit of {self.max_body} "
                                       f"bytes (--max-body-size); the client is answered 413")
            if not message.get("more_body"):
                self._ended = True
            if chunk:
                yield chunk

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class IsolateHttpProtocol(CoalescingHttpToolsProtocol):
    """The host's protocol class, serving a connection handed to this isolate."""

    def setup(self, server: HttpServer, conn_id: int, slot: int, keep: socket.socket, data: bytes) -> None:
        self.server_ = server
        self.conn_id = conn_id
        self.slot = slot
        self._keep = keep
        self._pending = data
        #: handed back or released: this isolate no longer serves it
        self._done = False
        #: a message is being parsed (its head or body)
        self._parsing = False
        #: the bytes since the current request began (while its head arrives)
        self._raw = b""
        self._at_boundary = True
        self._begins = 0
        self._was_parsing = False
        self._state = -1
        #: the request was answered 504 here or by the host: its handler's answer is dropped
        self.abandoned = False
        #: the request-response cycle being answered (requests pipelined behind it wait)
        self.running: Any = None

    def _set(self, state: int) -> None:
        self._state = state
        self.server_.slots.set(self.slot, state, time.monotonic())

    @property
    def idle(self) -> bool:
        return not self._done and not self._parsing and (self.cycle is None or self.cycle.response_complete) \
            and not self.pipeline

    @property
    def gone(self) -> bool:
        cycle = self.running
        return cycle is None or cycle.disconnected or self.transport.is_closing()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        data, self._pending = self._pending, b""
        if data:
            self._set(http_slots.BUSY)
            self.data_received(data)
            # the loop starts reading once this returns, undoing a pause the parse asked for
            # (a large body) while uvicorn's flow control still believes it paused: each read
            # re-applies the pause (data_received), or a body would be read in whole
            self.loop.call_soon(self._keep_paused)
        elif self.server_.releasing:
            self.release()
        else:  # a kept-alive connection from the isolate before a reload: idle until its next request
            self._set(http_slots.IDLE)
            self._in_headers = False
            self._idle_since = self.loop.time()
            self._cancel_header_deadline()
            self._arm_header_deadline(self.timeout_keep_alive)

    def _keep_paused(self) -> None:
        if self.flow.read_paused and not self.transport.is_closing():
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if not self._parsing:  # these bytes begin a new request
            self._raw = data
            if self._state != http_slots.BUSY:
                self._set(http_slots.BUSY)
        elif self._in_headers:
            self._raw += data
        self._begins = 0
        self._was_parsing = self._parsing
        super().data_received(data)
        flow = self.flow
        if flow.read_paused and flow._transport.is_reading():  # see _keep_paused
            flow._transport.pause_reading()

    def _stopped_by(self, exc: Exception) -> bool:
        if not isinstance(exc.__context__, _HandBack):
            return False
        self._hand_back(self._raw)
        return True

    def on_message_begin(self) -> None:
        # a request that begins where a read began can be handed back byte for byte
        self._at_boundary = self._begins == 0 and not self._was_parsing
        self._begins += 1
        self._parsing = True
        super().on_message_begin()
        self.scope["edgelet.conn"] = self  # type: ignore[typeddict-unknown-key]

    def on_headers_complete(self) -> None:
        if not self.server_.owns(self):
            if self._at_boundary and len(self._raw) <= MAX_DATA:
                raise _HandBack
            # pipelined behind another request: its bytes are no longer whole here
            self.scope["edgelet.refused"] = (  # type: ignore[typeddict-unknown-key]
                f"this connection is served by Worker {self.server_.worker!r}; a request for "
                f"/cdn-cgi/, another Worker or an upgrade cannot be pipelined behind one of its "
                f"requests: send it on a new connection")
        super().on_headers_complete()
        # this request's cycle (self.cycle moves on to a request pipelined behind it)
        self.scope["edgelet.cycle"] = self.cycle  # type: ignore[typeddict-unknown-key]

    def on_message_complete(self) -> None:
        self._parsing = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._done or self._parsing or not self.cycle.response_complete or self.transport.is_closing():
            return
        if self.server_.releasing:
            self.release()
        else:
            self._state = http_slots.IDLE
            self.server_.slots.set(self.slot, http_slots.IDLE)

    def responding(self, streamed: bool) -> bool:
        """Mark a streamed response as started (a whole one is written in this loop turn);
        False when the host has answered instead."""
        if self.server_.slots.state(self.slot) == http_slots.TAKEN:
            self.abandoned = True
            self._done = True
            self.transport.close()
            return False
        if streamed:
            self._set(http_slots.RESPONDING)
        return True

    def timed_out(self, limit: float) -> None:
        """The request ran past request_timeout_ms: the client gets the host's 504 (the
        handler runs on, its answer dropped), and the connection closes."""
        cycle = self.running
        if self._done or cycle is None or cycle.response_started or self.transport.is_closing():
            return
        if self.server_.slots.state(self.slot) == http_slots.TAKEN:  # the host answered already
            self.abandoned = True
            self._done = True
            self.transport.close()
            return
        self.abandoned = True
        cycle.disconnected = True  # the handler's sends are dropped from now on
        worker = self.server_.worker
        text = (f"Worker {worker!r} did not answer fetch within {limit:g} s (request_timeout_ms); "
                f"the request was abandoned").encode()
        self._set(http_slots.RESPONDING)
        self.transport.write(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain;charset=UTF-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text))
        self.transport.close()
        if self.server_.log_requests:
            self.server_.log([worker, cycle.scope["method"], cycle.scope["path"], 504, limit * 1000, False])

    def _hand_back(self, data: bytes) -> None:
        """Give the connection back to the host with ``data``, the bytes of the request it
        serves; this isolate forgets it (without ending it for the client)."""
        self._done = True
        self._cancel_header_deadline()
        self.server_.slots.set(self.slot, http_slots.FREE)
        try:
            handoff.send("http", self._keep, data, {"id": self.conn_id})
        except HandoffError:
            self._end()
        self.transport.close()

    def release(self) -> None:
        """Stop reading (a reload): the host gives the connection to the next isolate."""
        self._done = True
        self._cancel_header_deadline()
        self.transport.pause_reading()
        self._set(http_slots.RELEASED)

    def _end(self) -> None:
        try:
            self._keep.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        server = self.server_
        server.deadlines.pop(self, None)
        if not self._done:  # it ends here: the client must see the end (the host holds a copy)
            self._done = True
            self._end()
            server.slots.set(self.slot, http_slots.FREE)
            server.closed(self.conn_id)
        elif self.abandoned:
            server.closed(self.conn_id)
        self._keep.close()


async def _plain(send: Any, status: int, text: str, *, close: bool = False) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _close_stream(resp: Any) -> None:
    """End a streamed Response nobody will read."""
    stream = getattr(resp, "_stream", None)
    resp._stream = None
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass


__all__ = ["HttpServer", "on_call"]
