"""One HTTP/1.1 connection served inside an isolate: httptools' parser, the Worker's Request
built from the parsed head, its Response written as one buffer.

Why not uvicorn here: with a connection handed to the isolate (edgelet.runtime.http_server),
uvicorn's per-request machinery (an ASGI scope, a RequestResponseCycle with its Event, the
``receive``/``send`` messages, headers converted twice, a protocol subclass layered for the
header limits and the write joining) was ~30 % of the isolate's CPU per hello-world request
(py-spy, bench/RESULTS.md). This protocol keeps what a request needs and nothing else: the
parser's callbacks fill one small record per request, the fetch handler gets a ``Request``
built straight from it, and a whole ``Response`` goes out as one ``transport.write``.

What it keeps from the host path (edgelet.http_protocol, edgelet.server), checked by
tests/platform/test_http_in_isolate.py: keep-alive and its timeout; pipelining (one request
answered at a time, in order; reading pauses while one waits); request bodies read whole up
to ``STREAM_AFTER`` and streamed to the Worker past it, with flow control; ``Expect:
100-continue``; the body limit (413, declared or mid-stream); the header block cap (431) and
deadline (408); Host validation (400); a bad request (400); the Worker's Content-Length
replaced by the real one; chunked streamed responses with backpressure; HEAD; HTTP/1.0;
``X-Forwarded-Proto`` from a trusted proxy; response header validation (500). What it adds
for the platform: the shared slot table (edgelet.http_slots) updated per request, handing a
request that is not this Worker's back to the host byte for byte, and the 504 of a request
past ``request_timeout_ms`` (HttpServer's tick calls :meth:`IsolateConnection.timed_out`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import traceback
import urllib.parse
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from edgelet import http_slots
from edgelet.handoff import MAX_DATA, HandoffError
from edgelet.http_request import STREAM_AFTER, BadRequest
from edgelet.runtime import handoff
from edgelet.runtime.http_conn_request import HIGH_WATER, BodySource, ConnRequest
from edgelet.runtime.http_head import BadHeader, header_block, status_line
from edgelet.runtime.http_types import _METHODS, Headers, Request, Response, chunks_of

if TYPE_CHECKING:
    from edgelet.runtime.http_server import HttpServer

#: seconds a refused connection keeps reading (and dropping) before it is closed
_LINGER = 1.0


class _HandBack(Exception):
    """Raised from the parser's headers callback: this request is the host's to serve."""


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the request line and headers are over the cap."""


class IsolateConnection(asyncio.Protocol):
    """A connection the host handed to this isolate, served until it ends, is handed back
    (a request that is not this Worker's) or is released (a reload)."""

    def __init__(self, server: HttpServer, conn_id: int, slot: int, keep: socket.socket, data: bytes) -> None:
        self.server = server
        self.loop = server.loop
        self.conn_id = conn_id
        self.slot = slot
        self._keep = keep  # a duplicate: ends the connection for the client even if the host holds one
        self._pending = data
        self.parser = httptools.HttpRequestParser(self)
        try:  # answer a request even when bytes follow its "Connection: close" (as uvicorn)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # pragma: no cover - httptools < 0.6.3
            pass
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        #: handed back, released or refused: this isolate no longer serves it
        self._done = False
        self.lost = False
        #: the request being parsed (its head or body), and the one being answered
        self._req: ConnRequest | None = None
        self.running: ConnRequest | None = None
        self._queue: deque[ConnRequest] = deque()
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0  # raw bytes read while in a header block
        self._block = 0  # parsed size of the current header block
        #: loop.time() when the current header block began (None: not in one)
        self._head_since: float | None = None
        #: loop.time() since the connection sits between requests (None: it does not)
        self._idle_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._discarding = False
        self._reading_paused = False
        self._write_paused: asyncio.Future[None] | None = None
        self._raw = b""  # the bytes since the current request began (while its head arrives)
        self._at_boundary = True
        self._begins = 0
        self._was_parsing = False
        self._state = -1
        #: the request was answered 504 here or by the host: its handler's answer is dropped
        self.abandoned = False
        self._peer: Any = None

    # -- the transport ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        data, self._pending = self._pending, b""
        if data:
            self.data_received(data)
            # the loop starts reading once this returns: undo that if the parse paused
            self.loop.call_soon(self._keep_paused)
        elif self.server.releasing:
            self.release()
        else:  # a kept-alive connection of the isolate before a reload: idle until its next request
            self._idle()

    def _keep_paused(self) -> None:
        if self._reading_paused and not self.transport.is_closing():
            self.transport.pause_reading()

    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self._done:
            self._reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self._write_paused is None:
            self._write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        waiter, self._write_paused = self._write_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close: a client that ended its side sends no further request

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._cancel_timer()
        self.server.connections.discard(self)
        self.server.deadlines.pop(self, None)
        for req in (self._req, self.running):
            if req is not None and req.source is not None:
                req.source.wake()
        self._wake_body()
        self.resume_writing()
        server = self.server
        if not self._done:  # it ends here: the client must see the end (the host holds a copy)
            self._done = True
            self._end()
            server.slots.set(self.slot, http_slots.FREE)
            server.closed(self.conn_id)
        elif self.abandoned:
            server.closed(self.conn_id)
        self._keep.close()
        self.parser = None  # type: ignore[assignment]

    def _end(self) -> None:
        try:
            self._keep.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _set(self, state: int) -> None:
        self._state = state
        self.server.slots.set(self.slot, state, time.monotonic())

    # -- reading --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._done or self._discarding:
            return
        parsing = self._req is not None
        if not parsing:  # these bytes begin a new request
            self._raw = data
            self._idle_since = None
        elif self._head_since is not None:
            self._raw += data
        self._begins = 0
        self._was_parsing = parsing
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # an upgrade is handed back at its head (owns); one pipelined behind a request
            # was refused there: nothing of it reaches the Worker
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _HandBack):
                self._hand_back(self._raw)
            elif isinstance(cause, _HeadTooLarge):
                self._head_too_large()
            elif not self._done:
                self._refuse(400, "Bad Request", "Invalid HTTP request received.")
            return
        if self._head_since is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.server.max_header_bytes:
                self._head_too_large()  # still no end of the block in sight

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        # a request that begins where a read began can be handed back byte for byte
        self._at_boundary = self._begins == 0 and not self._was_parsing
        self._begins += 1
        self._req = ConnRequest()
        self._url = b""
        self._headers = []
        self._block = 0
        self._head_bytes = 0
        self._head_since = self.loop.time()
        self._idle_since = None
        if self._state != http_slots.BUSY:
            self._set(http_slots.BUSY)
        if self._timer is None:
            self._arm(self.server.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._block += len(url)
        if self._block > self.server.max_header_bytes:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._block += len(name) + len(value) + 4
        if self._block > self.server.max_header_bytes:
            raise _HeadTooLarge
        # llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes from the value
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1").rstrip(" \t")))

    def on_headers_complete(self) -> None:
        req = self._req
        assert req is not None
        self._head_since = None
        parser = self.parser
        req.target = self._url
        req.headers = self._headers
        req.method = parser.get_method().decode("ascii")
        req.version = version = parser.get_http_version()
        req.keep_alive = version != "1.0" and parser.should_keep_alive()
        if not self.server.owns(self, req, parser.should_upgrade()):
            if self._at_boundary and len(self._raw) <= MAX_DATA:
                raise _HandBack
            # pipelined behind another request: its bytes are no longer whole here
            req.refused = (f"this connection is served by Worker {self.server.worker!r}; a request for "
                           f"/cdn-cgi/, another Worker or an upgrade cannot be pipelined behind one of its "
                           f"requests: send it on a new connection")
        has_body = False
        declared = None
        for name, value in req.headers:
            if name == "content-length":
                if value != "0":
                    has_body = True
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == "transfer-encoding":
                has_body = True
            elif name == "expect" and value.lower() == "100-continue":
                req.expect = True
        req.has_body = has_body
        req.declared = declared
        if self.running is None:
            self._start(req)
        else:  # pipelined: answered after the one before; stop reading meanwhile (as uvicorn)
            self._queue.append(req)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self._req
        if req is None or req.answered:
            return
        size = req.size = req.size + len(body)
        if req.too_large:
            return
        if size > self.server.max_body:
            req.too_large = True
            req.chunks.clear()
            if req.source is not None:
                req.source.wake()
            elif req is self.running:
                self._wake_body()
            return
        req.chunks.append(body)
        req.buffered += len(body)
        if req.buffered > HIGH_WATER:
            self.pause_reading()
        if req.source is not None:
            req.source.wake()
        elif req is self.running and (size > STREAM_AFTER or req.buffered > HIGH_WATER):
            self._wake_body()

    def on_message_complete(self) -> None:
        req = self._req
        self._req = None
        if req is None:
            return
        req.complete = True
        if req.source is not None:
            req.source.wake()
        elif req is self.running:
            self._wake_body()
        elif req.answered and self.running is None and not self._queue:
            self._idle()  # the rest of an answered request's body was read: between requests now

    # -- answering ------------------------------------------------------------------------------
    def _start(self, req: ConnRequest) -> None:
        self.running = req
        self.loop.create_task(self._serve(req))

    _body_waiter: asyncio.Future[None] | None = None

    def _wake_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read_body(self, req: ConnRequest) -> Any:
        """The request's body: bytes, a BodySource (still arriving past STREAM_AFTER), or
        None when it must not run (413 written, or the client went away)."""
        server = self.server
        declared = req.declared
        if (declared is not None and declared > server.max_body) or req.too_large:
            self._too_large(req)
            return None
        if req.expect and not req.complete and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if req.too_large:
                self._too_large(req)
                return None
            if req.size > STREAM_AFTER:
                # streamed to the Worker, even when it has all arrived meanwhile (a cold start):
                # a large body reaches the Worker the same way however fast the client was
                req.source = BodySource(self, req)
                return req.source
            if req.complete:
                break
            if self.lost:
                if server.log_requests:
                    server.log(["", f"{req.method} {self._path(req)}: the client went away after {req.size} of "
                                    f"{declared if declared is not None else 'its'} body bytes; not run"])
                return None
            self._body_waiter = self.loop.create_future()
            self.resume_reading()
            await self._body_waiter
            self._body_waiter = None
        chunks = req.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        req.buffered = 0
        return body

    async def _serve(self, req: ConnRequest) -> None:
        """Answer one request (this coroutine is the request's task: the Worker's fetch runs in it)."""
        server = self.server
        started = time.perf_counter()
        try:
            if req.refused is not None:
                self._plain(req, 503, req.refused, close=True)
                return
            host = req.host
            if host is None:
                try:
                    host = server.host_of(self, req)
                except BadRequest as exc:
                    if server.log_requests:
                        server.log(["", f"{req.method} {self._path(req)} 400 ({exc})"])
                    self._plain(req, 400, str(exc))
                    return
            body: Any = b""
            source = None
            if req.has_body:
                body = await self._read_body(req)
                if body is None:
                    return
                if type(body) is not bytes:
                    source, body = body, b""
            request = Request.__new__(Request)
            target = req.target.decode("latin-1")
            if "#" in target:  # a fragment is not sent to the Worker (as on the host)
                target = target.split("#", 1)[0]
            if target[-1] == "?":  # an empty query: none (as on the host)
                target = target[:-1]
            request.url = f"{req.scheme}://{host}{target}"
            request.method = _METHODS.get(req.method, req.method)
            headers = Headers.__new__(Headers)
            headers._items = req.headers
            request.headers = headers
            request._data = body
            if source is not None:
                request._source = source
            status, out_headers, out_body = await self._fetch(request)
            if self.abandoned or self.lost:  # answered 504 (or by the host) meanwhile, or the client left
                if type(out_body) is not bytes:
                    await _close_stream(out_body)
                return
            if source is not None and source.failure is not None:
                if type(out_body) is not bytes:
                    await _close_stream(out_body)
                if source.failure == "too_large":
                    self._too_large(req)
                return
            if status == 101:
                if type(out_body) is not bytes:
                    await _close_stream(out_body)
                status, out_headers, out_body = 426, [["content-type", "text/plain;charset=UTF-8"]], (
                    f"Worker {server.worker!r} answered {self._path(req)} with a WebSocket (101), but the "
                    f"request is not a WebSocket upgrade; connect with a WebSocket client (ws://)").encode()
            if server.slots.state(self.slot) == http_slots.TAKEN:  # the host answered (504)
                self.abandoned = True
                self._done = True
                self.transport.close()
                if type(out_body) is not bytes:
                    await _close_stream(out_body)
                return
            if type(out_body) is bytes:
                self._respond(req, status, out_headers, out_body)
            else:
                await self._respond_stream(req, status, out_headers, out_body)
            if server.log_requests:
                server.log([server.worker, req.method, self._path(req), status,
                            (time.perf_counter() - started) * 1000, source is not None])
        except (Exception, asyncio.CancelledError):  # a bug here, or the task cancelled: a 500, the log says why
            server.runtime.log("error", f"edgelet: serving {req.method} {self._path(req)} failed\n"
                                        f"{traceback.format_exc()}")
            if not req.started and not self.transport.is_closing():
                self._plain(req, 500, "Internal Server Error", close=True)
            else:
                self.transport.close()
        finally:
            self._finished(req)

    async def _fetch(self, request: Request) -> list[Any]:
        """Run the fetch handler as Runtime.on_fetch does; a streamed body stays a Response."""
        server = self.server
        runtime = server.runtime
        server.deadlines[self] = time.monotonic() + server.request_timeout
        try:
            fn, ctx = runtime.handler("fetch")
            resp = await runtime._call_handler(fn, request, runtime.env, ctx)
            if type(resp) is Response and resp.status != 101:
                stream = resp._stream
                return [resp.status, resp.headers._items, resp._body if stream is None else resp]
            if getattr(resp, "_stream", None) is not None:
                return [resp.status, resp.headers._items, resp]
            return runtime._response_to_wire(resp)
        except MemoryError:
            os.write(2, b"edgelet: Worker exceeded its memory limit during fetch\n")
            os._exit(71)
        except Exception as exc:
            return runtime.uncaught_in_fetch(request, exc)
        finally:
            server.deadlines.pop(self, None)

    def _head(self, req: ConnRequest, status: int, headers: Any, tail: bytes) -> bytes:
        """The status line and header block, ``tail`` (the framing and the blank line) last."""
        block, close = header_block(headers)
        if close:
            req.keep_alive = False
        if not req.keep_alive:
            tail = b"connection: close\r\n" + tail
        return b"".join((status_line(status), self.server.default_head, block, tail))

    def _bad_header(self, req: ConnRequest, exc: BadHeader) -> None:
        worker = self.server.worker
        text = f"Worker {worker!r} answered {req.method} {self._path(req)} {exc}"
        self.server.runtime.log("error", text)
        self._plain(req, 500, text, close=True)

    def _respond(self, req: ConnRequest, status: int, headers: Any, body: bytes) -> None:
        try:
            head = self._head(req, status, headers, b"content-length: %d\r\n\r\n" % len(body))
        except BadHeader as exc:
            self._bad_header(req, exc)
            return
        req.started = req.answered = True
        if req.method == "HEAD" or not body:
            self.transport.write(head)
        elif len(body) <= 65536:
            self.transport.write(head + body)  # one send(): one packet for a small answer
        else:
            self.transport.write(head)
            self.transport.write(body)

    async def _respond_stream(self, req: ConnRequest, status: int, headers: Any, resp: Any) -> None:
        """A body the Worker streams, chunk by chunk (chunked encoding): writing waits while
        the client is slow (backpressure), and a client gone ends the Worker's stream."""
        no_body = req.method == "HEAD" or status in (204, 304)
        try:
            head = self._head(req, status, headers, b"\r\n" if no_body else b"transfer-encoding: chunked\r\n\r\n")
        except BadHeader as exc:
            await _close_stream(resp)
            self._bad_header(req, exc)
            return
        self._set(http_slots.RESPONDING)
        req.started = True
        if no_body:
            await _close_stream(resp)
            self.transport.write(head)
            req.answered = True
            return
        chunks = chunks_of(resp)
        transport = self.transport
        sent = 0
        try:
            pending = head
            async for chunk in chunks:
                if self.lost or transport.is_closing():
                    return
                transport.write(b"%s%x\r\n%s\r\n" % (pending, len(chunk), chunk))
                pending = b""
                sent += len(chunk)
                waiter = self._write_paused
                if waiter is not None:
                    await waiter
            if not self.lost:
                transport.write(pending + b"0\r\n\r\n")
                req.answered = True
        except Exception as exc:
            # as on the host path (edgelet.server._send_stream): no final chunk, so the client
            # sees the body incomplete, never a short one that looks whole; the log says why
            what = f"{req.method} {self._path(req)}"
            worker = self.server.worker
            runtime = self.server.runtime
            runtime.log("error", f"Uncaught exception in the streamed body of {what}\n{traceback.format_exc()}")
            runtime.log("warn", f"{worker} {what}: the response body was cut short after {sent} bytes: "
                                f"Worker {worker!r}: its response body raised {type(exc).__name__}: {exc}; "
                                f"the connection is closed without the body's end, so the client sees "
                                f"it incomplete")
            transport.close()
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # an async generator

    def _plain(self, req: ConnRequest, status: int, text: str, *, close: bool = False) -> None:
        body = text.encode()
        if close:
            req.keep_alive = False
        req.started = req.answered = True
        self.transport.write(b"%s%scontent-type: text/plain;charset=UTF-8\r\ncontent-length: %d\r\n%s\r\n%s"
                             % (status_line(status), self.server.default_head,
                                len(body), b"" if req.keep_alive else b"connection: close\r\n",
                                b"" if req.method == "HEAD" else body))

    def _too_large(self, req: ConnRequest) -> None:
        """413, and the connection ends: the rest of the body is not worth reading."""
        server = self.server
        if server.log_requests:
            server.log(["", f"{req.method} {self._path(req)} 413 (body over {server.max_body} bytes)"])
        self._refuse(413, "Content Too Large",
                     f"request body is larger than the limit of {server.max_body} bytes; send "
                     f"less, or start `edgelet dev` with a larger --max-body-size", req)

    def _finished(self, req: ConnRequest) -> None:
        """The request's task ends: the next pipelined one starts, or the connection is idle."""
        if req.source is not None:
            req.chunks.clear()  # the Worker did not read all of it: the rest is dropped as it comes
        req.answered = True
        if self.running is req:
            self.running = None
        if self._done or self.lost or self._discarding or self.transport.is_closing():
            return
        if not req.keep_alive:  # ended once the response is out (connection_lost tells the host)
            self._cancel_timer()
            self.transport.close()
            return
        if self._queue:
            self._start(self._queue.popleft())
            if not self._queue:
                self.resume_reading()
            return
        self.resume_reading()
        if self._req is None:
            self._idle()

    def _idle(self) -> None:
        """Between requests: the keep-alive timeout runs, a reload takes the connection."""
        if self.server.releasing:
            self.release()
            return
        if self._state != http_slots.IDLE:
            self._state = http_slots.IDLE
            self.server.slots.set(self.slot, http_slots.IDLE)
        now = self._idle_since = self.loop.time()
        timer = self._timer
        keep_alive = self.server.keep_alive
        if timer is not None and timer.when() > now + keep_alive:
            self._cancel_timer()  # due too late for the idle timeout
        if self._timer is None:
            self._arm(keep_alive)

    @staticmethod
    def _path(req: ConnRequest) -> str:
        """The request's path as the host's log line shows it (decoded, no query)."""
        path = req.target.split(b"?", 1)[0].decode("latin-1")
        return urllib.parse.unquote(path) if "%" in path else path

    # -- deadlines ------------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        """One timer per connection, not per request: when it fires it checks the header
        block in progress or the idle time, and re-arms itself for what is left."""
        self._timer = self.loop.call_later(delay, self._timer_fired)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self) -> None:
        self._timer = None
        if self._done or self.transport.is_closing():
            return
        now = self.loop.time()
        server = self.server
        if self._idle_since is not None:  # between requests: the keep-alive timeout
            left = self._idle_since + server.keep_alive - now
            if left > 0:
                self._arm(left)
            else:
                self.transport.close()  # connection_lost ends it for the client and tells the host
            return
        if self._head_since is None:
            return  # a request is being answered: its end or the next block arms the timer
        left = self._head_since + server.header_timeout - now
        if left > 0:  # this block began after the timer was armed: give it its full time
            self._arm(left)
            return
        self._refuse(408, "Request Timeout", f"the request's headers did not arrive within "
                                             f"{server.header_timeout:g} s")

    def timed_out(self, limit: float) -> None:
        """The request ran past request_timeout_ms: the client gets the host's 504 (the
        handler runs on, its answer dropped), and the connection closes."""
        req = self.running
        if self._done or req is None or req.started or self.transport.is_closing():
            return
        server = self.server
        self.abandoned = True
        self._done = True
        if server.slots.state(self.slot) == http_slots.TAKEN:  # the host answered already
            self.transport.close()
            return
        text = (f"Worker {server.worker!r} did not answer fetch within {limit:g} s (request_timeout_ms); "
                f"the request was abandoned").encode()
        self._set(http_slots.RESPONDING)
        req.started = True
        self.transport.write(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain;charset=UTF-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text))
        self.transport.close()
        if server.log_requests:
            server.log([server.worker, req.method, self._path(req), 504, limit * 1000, False])

    # -- ending it here ------------------------------------------------------------------------
    def _refuse(self, status: int, phrase: str, text: str, req: ConnRequest | None = None) -> None:
        """Answer ``status`` and end the connection with a lingering close: closing with
        unread bytes would send a reset that can destroy the answer before the client reads
        it, so end our side, drop what still comes for a moment, then close."""
        self._cancel_timer()
        self._head_since = None
        if req is not None:
            req.started = req.answered = True
        body = text.encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, phrase.encode(), len(body), body))
        self._discarding = True
        self.resume_reading()
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            pass
        self.loop.call_later(_LINGER, self.transport.close)

    def _head_too_large(self) -> None:
        limit = self.server.max_header_bytes
        self._refuse(431, "Request Header Fields Too Large",
                     f"the request line and headers are over {limit} bytes; send fewer or shorter headers")

    def _hand_back(self, data: bytes) -> None:
        """Give the connection back to the host with ``data``, the bytes of the request it
        serves; this isolate forgets it (without ending it for the client)."""
        self._done = True
        self._cancel_timer()
        self.server.slots.set(self.slot, http_slots.FREE)
        try:
            handoff.send("http", self._keep, data, {"id": self.conn_id})
        except HandoffError:
            self._end()
        self.transport.close()

    @property
    def idle(self) -> bool:
        return not self._done and self._req is None and self.running is None and not self._queue

    def release(self) -> None:
        """Stop reading (a reload): the host gives the connection to the next isolate."""
        self._done = True
        self._cancel_timer()
        self.transport.pause_reading()
        self._set(http_slots.RELEASED)

    def peer(self) -> Any:
        if self._peer is None:
            self._peer = self.transport.get_extra_info("peername") or ()
        return self._peer


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


__all__ = ["IsolateConnection"]
