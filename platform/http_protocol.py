"""uvicorn's httptools protocol, with the writes of one response joined into one send(),
a cap on the header block and a deadline for it.

Why: an ASGI response is at least two messages (``http.response.start``, then the body),
and uvicorn writes each to the socket as it comes: two ``send()`` system calls and, with
TCP_NODELAY, two packets per response. Under load those calls were half of the host's
CPU time per request (py-spy of ``edgelet dev`` under wrk); joined, a hello-world served
12% more requests/s (bench/RESULTS.md). Here the connection's writes
are collected and handed to the socket once, at the end of the event-loop iteration that
made them; the bytes and their order are unchanged.

Why the header limits: llhttp (under httptools) buffers a header block of any size and
uvicorn waits for it forever, so one client could hold memory or a connection open at no
cost. A block over :data:`MAX_HEADER_BYTES` gets 431, and a connection that has not sent a
whole block within :data:`HEADER_TIMEOUT` seconds of starting it is closed (SPEC 5).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("edgelet.http")

#: pending bytes past which writes go out at once rather than at the end of the iteration
_FLUSH_AT = 64 * 1024

#: the largest request line + header block accepted (431 above it)
MAX_HEADER_BYTES = 64 * 1024
#: seconds a connection has to send a whole request line + header block
HEADER_TIMEOUT = 10.0
#: seconds a refused connection keeps reading (and dropping) before it is closed
_LINGER = 1.0


class _HeaderBlockTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are too large."""


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
    """uvicorn's ``httptools`` protocol over a :class:`CoalescingTransport`, with the header
    block capped at ``max_header_bytes`` and due within ``header_timeout`` seconds."""

    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout: float = HEADER_TIMEOUT

    @classmethod
    def configured(cls, *, header_timeout: float = HEADER_TIMEOUT,
                   max_header_bytes: int = MAX_HEADER_BYTES) -> type[CoalescingHttpToolsProtocol]:
        """A subclass with other limits (uvicorn takes a class, not an instance)."""
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout,
                                           "max_header_bytes": max_header_bytes})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the real transport
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._in_headers = True  # until the first request's header block is complete
        self._header_bytes = 0  # raw bytes read while in a header block
        self._block_bytes = 0  # the parsed size of the current block
        self._started = False  # bytes of the current request's block have arrived
        self._discarding = False  # refused: what the client still sends is dropped
        self._header_deadline: asyncio.TimerHandle | None = None
        #: loop.time() since the connection sits between requests (None: it does not)
        self._idle_since: float | None = None
        #: loop.time() when the current header block began (or the connection opened)
        self._header_since = self.loop.time()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    # -- the header deadline --------------------------------------------------------------
    def _arm_header_deadline(self, delay: float | None = None) -> None:
        """One timer per connection, not per request: it stays armed across the requests of
        a keep-alive connection and, when it fires, checks the block in progress or the
        idle time (arming and cancelling a timer for every request cost ~10 % of
        hello-world's throughput)."""
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout if delay is None else delay, self._header_timed_out)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._idle_since is not None:  # between requests: uvicorn's keep-alive timeout
            left = self._idle_since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self._arm_header_deadline(left)
            else:
                self.transport.close()
            return
        if not self._in_headers:
            return  # a request is being answered: its end or the next block arms the timer
        left = self._header_since + self.header_timeout - self.loop.time()
        if left > 0:  # this block began after the timer was armed: give it its full time
            self._arm_header_deadline(left)
            return
        if self._started or self._header_bytes:  # a request was started: say why it ends
            log.info("closing a connection from %s: no whole header block within %.0f s",
                     self.client, self.header_timeout)
            self._refuse(408, "Request Timeout", f"the request's headers did not arrive within "
                                                 f"{self.header_timeout:g} s")
        else:
            self.transport.close()

    # -- the header size cap ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._idle_since = None
        if self._in_headers:
            self._header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeaderBlockTooLarge):
                self._header_block_too_large()
                return
            if self._stopped_by(exc):
                return
            log.info("invalid HTTP request from %s: %s", self.client, exc)
            self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._header_block_too_large()  # still no end of the block in sight

    def _stopped_by(self, exc: Exception) -> bool:
        """Whether a parser callback stopped the parse on purpose (a subclass that raised
        in one, e.g. to hand the connection on: edgelet.runtime.http_server) and has dealt
        with it; otherwise the error is a bad request (400)."""
        return False

    def on_response_complete(self) -> None:
        """uvicorn's, except for the keep-alive timeout: uvicorn arms a timer after every
        response and cancels it when the next request's bytes come; here the connection's
        one timer (above) closes it once it has been idle for ``timeout_keep_alive``."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request waits: start it
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        now = self.loop.time()
        self._idle_since = now
        timer = self._header_deadline
        if timer is not None and timer.when() > now + self.timeout_keep_alive:
            self._cancel_header_deadline()  # due too late for the idle timeout
        self._arm_header_deadline(self.timeout_keep_alive)

    def handle_websocket_upgrade(self) -> None:
        # the deadline timer holds this protocol object: left armed past the upgrade it would
        # keep every idle WebSocket's HTTP half alive for header_timeout seconds
        self._cancel_header_deadline()
        self._in_headers = False
        super().handle_websocket_upgrade()

    def _header_block_too_large(self) -> None:
        log.info("refusing a request from %s: header block over %d bytes", self.client,
                 self.max_header_bytes)
        self._refuse(431, "Request Header Fields Too Large",
                     f"the request line and headers are over {self.max_header_bytes} bytes; "
                     f"send fewer or shorter headers")

    def _refuse(self, status: int, phrase: str, text: str) -> None:
        self._cancel_header_deadline()
        self._in_headers = False
        body = text.encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, phrase.encode(), len(body), body))
        # a lingering close: closing with unread bytes would send a reset that can destroy the
        # answer before the client reads it, so end our side, drop what still comes for a
        # moment, then close
        self._discarding = True
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            pass
        self.loop.call_later(_LINGER, self.transport.close)

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._started = True
        self._block_bytes = 0
        self._header_since = self.loop.time()
        self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        # the exact size of a block that ended in this read (data_received counts raw reads)
        self._block_bytes += size
        if self._block_bytes > self.max_header_bytes:
            raise _HeaderBlockTooLarge

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._started = False
        self._header_bytes = 0
        self._block_bytes = 0
        super().on_headers_complete()
