"""Isolates serving their own Worker's HTTP connections: the host half.

Why: on the host path every request costs an HTTP parse and a channel round trip in the
host on top of the isolate's work, and the host alone cost more than a whole request of a
bare uvicorn app (bench/RESULTS.md, issue 20). Here the host keeps the listening socket,
reads each new connection's first request head and, when it is a plain request for one
Worker (not ``/cdn-cgi/``, not an upgrade, a valid Host), hands the connection to that
Worker's isolate (edgelet.handoff) with the bytes it read; the isolate serves it and every
later request on it (edgelet.runtime.http_server) and hands back the ones that are not its
own, which the host then serves exactly as before.

The host keeps a duplicate of each handed descriptor and shares a slot table with the
isolate (edgelet.http_slots), so that it can still answer for a connection:

- the isolate dies: a connection with a request in flight gets the 503 a call in flight
  gets today (naming the crash, or the reload); idle ones are closed;
- a reload: the isolate stops reading its connections between requests and the host gives
  them to the next isolate, so a kept-alive client's next request is served; requests still
  running after RELOAD_DRAIN_S get the 503 saying the Worker was reloaded;
- the isolate's loop is stuck past ``request_timeout_ms``: the host answers 504 and runs
  the unresponsive-isolate check, as for a call;
- request log lines arrive as one notification per isolate loop iteration and are logged
  (and reach ``edgelet tail``) as the host's own.

The default since the isolate serves a connection without uvicorn (edgelet.runtime.http_conn):
hello-world costs ~21 us of CPU per request against ~51 us through the host, and serves more
than a bare uvicorn app (bench/RESULTS.md, "Round 3: the isolate serves its connections").
``EDGELET_HTTP_HANDOFF=0`` keeps every connection on the host. Served on the host path
anyway: Wasm Workers (whole bodies, their C path), Workers behind an interceptor (static
assets), and every Worker while the terminal's debugger relay is on (pdb holds request
deadlines).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
import urllib.parse
from typing import Any

import httptools

from edgelet import http_slots
from edgelet.handoff import MAX_DATA, HandoffError, http_enabled
from edgelet.http_protocol import CoalescingHttpToolsProtocol
from edgelet.http_request import BadRequest, _checked_host

log = logging.getLogger("edgelet.http")

#: a heartbeat older than this means the isolate's loop is stuck (it beats every 50 ms)
STALE_S = 0.5
#: how often the host looks for requests past their timeout in a stuck isolate
SWEEP_S = 0.1
#: the longest a new connection waits for its Worker's isolate to be set up for connections
SETUP_WAIT_S = 3.0


def protocol_class(app: Any, header_timeout: float) -> type[CoalescingHttpToolsProtocol]:
    """uvicorn's ``http`` class for a server of ``app`` (an EdgeletApp, or dev's SwappableApp):
    handing connections over when switched on."""
    if not http_enabled():  # EDGELET_HTTP_HANDOFF=0: everything on the host
        return CoalescingHttpToolsProtocol.configured(header_timeout=header_timeout)
    base = HostProtocol.configured(header_timeout=header_timeout)
    return type(base.__name__, (base,), {"router": Router(app)})


class HostProtocol(CoalescingHttpToolsProtocol):
    """The host's protocol, reading a new connection's first request head before it decides
    who serves it (``router``: None serves everything here)."""

    router: Router | None = None
    #: bytes to serve first on a connection an isolate handed back (set by Router.serve_here)
    _pending: bytes | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pending, self._pending = self._pending, None
        self._sniff: bytes | None = None
        if pending is not None:
            if pending:
                self.data_received(pending)
                self.loop.call_soon(self._keep_paused)  # see edgelet.runtime.http_server
        elif self.router is not None:
            self._sniff = b""

    def _keep_paused(self) -> None:
        if self.flow.read_paused and not self.transport.is_closing():
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        sniff = self._sniff
        if sniff is None:
            super().data_received(data)
            flow = self.flow
            if flow.read_paused and flow._transport.is_reading():  # see _keep_paused
                flow._transport.pause_reading()
            return
        sniff += data
        end = sniff.find(b"\r\n\r\n")
        if end < 0:
            if len(sniff) > self.max_header_bytes or b"\n\n" in sniff:
                self._serve_here(sniff)
            else:
                self._sniff = sniff
                self._header_bytes = len(sniff)  # the header deadline says 408, not a silent close
            return
        self._sniff = None
        self._offer(sniff, end + 4)

    def _offer(self, data: bytes, head: int, retried: bool = False) -> None:
        assert self.router is not None
        verdict = self.router.offer(self, data, head)
        if verdict is True:
            return
        if verdict is False or retried:
            self._serve_here(data)
            return
        # the isolate is being set up for handed connections (its first): a moment, at most
        # SETUP_WAIT_S (a client is never held longer than that: the host serves it instead)
        self.transport.pause_reading()
        waited = False

        def retry(_: Any) -> None:
            nonlocal waited
            if waited:
                return
            waited = True
            timer.cancel()
            if not self.transport.is_closing():
                self.transport.resume_reading()
                self._offer(data, head, retried=True)

        def give_up() -> None:
            nonlocal waited
            if waited:
                return
            waited = True
            log.info("a connection waited %.0f s for its Worker's isolate to take connections; the host "
                     "serves it", SETUP_WAIT_S)
            if not self.transport.is_closing():
                self.transport.resume_reading()
                self._serve_here(data)

        timer = self.loop.call_later(SETUP_WAIT_S, give_up)
        verdict.add_done_callback(retry)

    def _serve_here(self, data: bytes) -> None:
        self._sniff = None
        self._header_bytes = 0
        super().data_received(data)

    def handed_over(self) -> None:
        """The isolate has the connection (and the host a duplicate): let go of ours."""
        self._cancel_header_deadline()
        self._discarding = True
        self.transport.close()


class _Head:
    """The parts of a request head the router needs (an httptools callback object)."""

    __slots__ = ("url", "hosts", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.hosts: list[bytes] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            self.hosts.append(value.rstrip(b" \t"))

    def on_headers_complete(self) -> None:
        self.complete = True


class Router:
    """Decides who serves a new connection: its Worker's isolate, or the host."""

    def __init__(self, app: Any) -> None:
        self._app = app
        #: (protocol class, uvicorn config, server state), from the first connection
        self._uvicorn: tuple[Any, Any, Any] | None = None

    def current(self) -> Any:
        """The EdgeletApp serving now (None while dev swaps its host)."""
        app = self._app
        ready = getattr(app, "ready", None)
        if ready is not None:
            return app.app if ready.is_set() else None
        return app

    def offer(self, protocol: HostProtocol, data: bytes, head: int) -> Any:
        """Hand the connection to its Worker's isolate: True if done, False to serve it
        here, or a future to wait for before asking again (the isolate is being set up)."""
        if self._uvicorn is None:
            self._uvicorn = (type(protocol), protocol.config, protocol.server_state)
        app = self.current()
        if app is None or app.closing or len(data) > MAX_DATA or app._interceptors \
                or app.host.debugger is not None:
            return False
        parsed = _Head()
        try:
            httptools.HttpRequestParser(parsed).feed_data(data[:head])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # a bad request, an upgrade
            return False
        if not parsed.complete or len(parsed.hosts) != 1 or not parsed.url.startswith(b"/"):
            return False
        path = parsed.url.split(b"?", 1)[0]
        if path.startswith(b"/cdn-cgi/") or (
                b"%" in path and urllib.parse.unquote(path.decode("latin-1")).startswith("/cdn-cgi/")):
            return False
        try:
            host = _checked_host(parsed.hosts[0])
        except BadRequest:
            return False
        worker = app._workers_by_host.get(host) or app._worker_for_host(host)
        if worker in app.host._whole_body_workers:
            return False
        isolate = app.host.isolates.get(worker)
        if isolate is None:
            return False
        conns: WorkerConnections | None = getattr(isolate, "http_connections", None)
        if conns is None:
            conns = isolate.http_connections = WorkerConnections(self, app, isolate)
        return conns.hand(protocol, data)

    def serve_here(self, sock: socket.socket, data: bytes) -> None:
        """Serve a connection an isolate handed back (or could not take) on the host,
        starting with ``data``."""
        if self._uvicorn is None:
            sock.close()
            return
        cls, config, state = self._uvicorn

        def make() -> Any:
            protocol = cls(config=config, server_state=state, app_state={})
            protocol._pending = data
            return protocol

        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(make, sock))

        def failed(t: asyncio.Task[Any]) -> None:  # never served: the connection ends here
            if not t.cancelled() and t.exception() is not None:
                sock.close()
        task.add_done_callback(failed)


class _Conn:
    __slots__ = ("sock", "slot", "gen")

    def __init__(self, sock: socket.socket, slot: int, gen: _Generation) -> None:
        self.sock = sock  # the host's duplicate
        self.slot = slot
        self.gen = gen


class _Generation:
    """The handed connections of one isolate process."""

    def __init__(self, channel: Any, endpoint: Any) -> None:
        self.channel = channel
        self.endpoint = endpoint
        self.slots = http_slots.Slots.create()
        self.conns: dict[int, _Conn] = {}
        self.free = list(range(http_slots.SLOTS - 1, -1, -1))
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()


class WorkerConnections:
    """The connections one Worker's isolates serve, across its restarts."""

    def __init__(self, router: Router, app: Any, isolate: Any) -> None:
        self.router = router
        self.app = app
        self.isolate = isolate
        self.gen: _Generation | None = None
        self.gens: list[_Generation] = []
        self.conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._sweeper: asyncio.TimerHandle | None = None
        isolate.handoff_handlers["http"] = self._handed_back
        isolate.notify_hooks["http.closed"] = self._closed
        isolate.notify_hooks["http.log"] = self._log
        isolate.exit_hooks.append(self._process_ended)
        isolate.reload_hooks.append(self)

    # -- handing over -------------------------------------------------------------------------
    def hand(self, protocol: HostProtocol, data: bytes) -> Any:
        gen = self._generation(protocol)
        if gen is None:  # no process runs (it crashed): start one, as a request on the host would
            if self.isolate.broken is not None or self.isolate.stopped:
                return False  # the host path answers with the load error (or it is stopping)
            return asyncio.ensure_future(self._start(protocol))
        if not gen.ready.done():
            return gen.ready
        if not gen.ready.result():
            return False
        fd = protocol.transport.get_extra_info("socket").fileno()
        if not self._send(gen, socket.socket(fileno=os.dup(fd)), data, http_slots.BUSY):
            return False
        protocol.handed_over()
        return True

    async def _start(self, protocol: HostProtocol) -> bool:
        """Start the Worker's isolate and set it up for connections; False if it fails to."""
        try:
            await self.isolate.start()
        except Exception:
            return False
        gen = self._generation(protocol)
        return gen is not None and await gen.ready

    def _send(self, gen: _Generation, dup: socket.socket, data: bytes, state: int) -> bool:
        if not gen.free:
            dup.close()
            return False
        slot = gen.free.pop()
        conn_id = next(self._ids)
        gen.slots.set(slot, state, time.monotonic())
        try:
            gen.endpoint.send("http", dup, data, {"id": conn_id, "slot": slot})
        except HandoffError:
            gen.slots.set(slot, http_slots.FREE)
            gen.free.append(slot)
            dup.close()
            return False
        conn = _Conn(dup, slot, gen)
        gen.conns[conn_id] = conn
        self.conns[conn_id] = conn
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
        return True

    def _generation(self, protocol: HostProtocol | None) -> _Generation | None:
        """The running process's connections, set up on its first (None: none runs)."""
        isolate = self.isolate
        endpoint, channel = isolate.handoff, isolate.loaded_channel  # not one still loading
        if endpoint is None or endpoint.closed or channel is None:
            return None
        gen = self.gen
        if gen is not None and gen.endpoint is endpoint:
            return gen
        gen = self.gen = _Generation(channel, endpoint)
        self.gens.append(gen)
        settings = {"slots": gen.slots.path, "worker": isolate.name, "primary": self.app.primary,
                    "workers": sorted(self.app.workers), "max_body": self.app.max_body,
                    "request_timeout": isolate.request_timeout,
                    "log_requests": log.isEnabledFor(logging.INFO),
                    "header_timeout": getattr(protocol, "header_timeout", 10.0),
                    "max_header_bytes": getattr(protocol, "max_header_bytes", 64 * 1024),
                    "keep_alive": getattr(protocol, "timeout_keep_alive", 5)}
        asyncio.ensure_future(self._setup(gen, settings))
        return gen

    async def _setup(self, gen: _Generation, settings: dict[str, Any]) -> None:
        try:
            await gen.channel.call("http.setup", settings, timeout=10)
        except Exception as exc:
            log.warning("Worker %r: its isolate does not serve connections itself (%s); the host "
                        "serves them", self.isolate.name, exc, extra={"worker": self.isolate.name})
            gen.ready.set_result(False)
        else:
            gen.ready.set_result(True)
        finally:
            gen.slots.unlink()  # both sides have it mapped

    def _forget(self, conn_id: int) -> _Conn | None:
        conn = self.conns.pop(conn_id, None)
        if conn is not None:
            conn.gen.conns.pop(conn_id, None)
            conn.gen.free.append(conn.slot)
        return conn

    # -- from the isolate ----------------------------------------------------------------------
    def _handed_back(self, sock: socket.socket, data: bytes, meta: dict[str, Any]) -> None:
        """A request the isolate does not serve (``/cdn-cgi/``, another Worker, an upgrade):
        the host serves the connection from now on, starting with the request's bytes."""
        conn = self._forget(meta.get("id", -1))
        if conn is not None:
            conn.sock.close()  # our duplicate; the connection itself goes on
        self.router.serve_here(sock, data)

    def _closed(self, args: list[Any]) -> None:
        for conn_id in args[0]:
            conn = self._forget(conn_id)
            if conn is not None:
                conn.sock.close()

    def _log(self, args: list[Any]) -> None:
        for line in args[0]:
            if not line[0]:
                log.info("%s", line[1])
            else:
                worker, method, path, status, ms, streamed = line
                log.info("%s %s %s %d (%.1f ms%s)", worker, method, path, status, ms,
                         ", streamed request body" if streamed else "", extra={"worker": worker})

    # -- when the isolate cannot answer -------------------------------------------------------
    def _process_ended(self, channel: Any, text: str, reason: str) -> None:
        """The process that served ``channel`` has ended: answer for its connections."""
        gen = next((g for g in self.gens if g.channel is channel), None)
        if gen is None:
            return
        self.gens.remove(gen)
        if self.gen is gen:
            self.gen = None
        if not gen.ready.done():
            gen.ready.set_result(False)
        moving: list[socket.socket] = []
        answered = cut = 0
        for conn_id, conn in list(gen.conns.items()):
            self.conns.pop(conn_id, None)
            state = gen.slots.state(conn.slot)
            if state == http_slots.RELEASED and reason == "reloaded":
                moving.append(conn.sock)
                continue
            if state == http_slots.BUSY:
                _answer(conn.sock, 503, "Service Unavailable", text)
                answered += 1
            elif state == http_slots.RESPONDING:  # ended without its last chunk: incomplete
                cut += 1
            _end(conn.sock)
        gen.conns.clear()
        gen.slots.close()
        if answered:
            log.info("%s: %d request(s) in flight on connections its isolate served answered 503 (%s)",
                     self.isolate.name, answered, text, extra={"worker": self.isolate.name})
        if cut:
            log.warning("%s: %d response bod%s being streamed on connections its isolate served "
                        "cut short: %s; closed without the body's end, so the client sees it incomplete",
                        self.isolate.name, cut, "y was" if cut == 1 else "ies were",
                        text.replace("while handling fetch", "while streaming the response body"),
                        extra={"worker": self.isolate.name})
        if moving:
            asyncio.ensure_future(self._move(moving))

    async def _move(self, socks: list[socket.socket]) -> None:
        """Kept-alive connections of a reloaded isolate: to the new one, else the host."""
        gen = None
        try:
            await self.isolate.start()
            gen = self._generation(None)
            if gen is not None and not await gen.ready:
                gen = None
        except Exception:
            gen = None
        for sock in socks:
            if gen is None or not self._send(gen, sock, b"", http_slots.IDLE):
                if gen is not None:  # _send closed it
                    continue
                self.router.serve_here(sock, b"")

    async def before_reload(self, channel: Any) -> None:
        """A reload is coming: the isolate stops reading its connections between requests."""
        gen = next((g for g in self.gens if g.channel is channel), None)
        if gen is None or not gen.conns or not gen.ready.done() or not gen.ready.result():
            return
        try:
            await channel.call("http.release", timeout=1.0)
        except Exception:  # it is gone or stuck: the reload goes on, and the exit hook answers
            pass

    def busy(self, channel: Any) -> bool:
        """Whether the process serving ``channel`` is still answering a request."""
        gen = next((g for g in self.gens if g.channel is channel), None)
        if gen is None:
            return False
        states = (http_slots.BUSY, http_slots.RESPONDING)
        return any(gen.slots.state(c.slot) in states for c in gen.conns.values())

    def _sweep(self) -> None:
        """Requests past request_timeout_ms in an isolate whose loop is stuck: the host
        answers 504 and checks the isolate (its own loop does this when it runs)."""
        self._sweeper = None
        if not self.conns:
            return
        now = time.monotonic()
        limit = self.isolate.request_timeout
        for gen in list(self.gens):
            if not gen.ready.done() or not gen.ready.result() or now - gen.slots.heartbeat < STALE_S:
                continue
            late = False
            for conn_id, conn in list(gen.conns.items()):
                state, since = gen.slots.get(conn.slot)
                if state == http_slots.BUSY and now - since > limit:
                    gen.slots.set(conn.slot, http_slots.TAKEN, now)
                    self.conns.pop(conn_id, None)
                    del gen.conns[conn_id]  # its slot stays TAKEN until the process ends
                    _answer(conn.sock, 504, "Gateway Timeout",
                            f"Worker {self.isolate.name!r} did not answer fetch within {limit:g} s "
                            f"(request_timeout_ms); the request was abandoned")
                    _end(conn.sock)
                    log.info("%s (a request on a connection its isolate served) 504 after %.1f s",
                             self.isolate.name, now - since, extra={"worker": self.isolate.name})
                    late = True
            if late:
                asyncio.ensure_future(self.isolate._check_alive(gen.channel))
        if self.conns:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)


def _answer(sock: socket.socket, status: int, phrase: str, text: str) -> None:
    """Write a whole plain-text response on a connection nobody else writes to now."""
    body = text.encode()
    try:
        sock.setblocking(False)
        sock.send(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain;charset=UTF-8\r\ncontent-length: %d\r\n"
                  b"connection: close\r\n\r\n%s" % (status, phrase.encode(), len(body), body))
    except OSError:
        pass


#: seconds a connection the host ends keeps reading (and dropping) before it is closed
_LINGER = 1.0


def _end(sock: socket.socket) -> None:
    """End the connection for the client (every copy), then close ours: a lingering close,
    since closing with unread bytes would send a reset that can destroy the answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    asyncio.get_running_loop().call_later(_LINGER, sock.close)
