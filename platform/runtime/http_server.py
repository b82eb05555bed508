"""An isolate serving its own Worker's HTTP connections (the host half is edgelet.http_handoff).

Why: with the host between client and isolate, each request costs an HTTP parse and a
channel round trip in the host on top of the isolate's work; the host alone cost more than
a whole request of a bare uvicorn app (bench/RESULTS.md, issue 20). Here the host accepts a
connection, reads its first request head and, when the request is a plain one for this
Worker, hands the connection over (edgelet.handoff) with the bytes it read; this isolate then
parses and answers every request on it (edgelet.runtime.http_conn: httptools' parser and
the Worker's Request built from it, without uvicorn's per-request machinery; the same limits
as the host: header cap 431, header deadline 408, keep-alive timeout, Host validation 400,
the body limit 413, mid-stream too, the request timeout 504). A request that is not its own
(``/cdn-cgi/``, another Worker, an upgrade) is handed back to the host with its bytes, and
the host serves it as before.

Per connection this isolate keeps a slot of the table it shares with the host
(edgelet.http_slots) up to date: idle, a request in flight, a response started. If the
isolate dies, the host answers the in-flight requests with the 503 naming the crash and
closes the idle connections; if its loop is stuck past the request timeout, the host
answers 504. Request log lines go to the host as one notification per loop iteration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
import urllib.parse
from email.utils import formatdate
from typing import Any

from edgelet import http_slots
from edgelet.http_request import BadRequest, _checked_host, request_host
from edgelet.runtime import handoff
from edgelet.runtime.http_conn import IsolateConnection
from edgelet.runtime.http_conn_request import ConnRequest

#: how often the loop proves it is alive (the slot table's heartbeat) and checks timeouts
TICK_S = 0.05
#: the schemes X-Forwarded-Proto may set (as uvicorn's ProxyHeadersMiddleware on the host)
_SCHEMES = frozenset(("http", "https", "ws", "wss"))

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


class HttpServer:
    """The connections of this isolate's Worker, served here."""

    def __init__(self, runtime: Any, settings: dict[str, Any]) -> None:
        self.runtime = runtime
        self.slots = http_slots.Slots(settings["slots"])
        self.worker: str = settings["worker"]
        self.primary: str = settings["primary"]
        self.workers = frozenset(settings["workers"])
        self.max_body: int = settings["max_body"]
        self.request_timeout: float = settings["request_timeout"]
        self.log_requests: bool = settings["log_requests"]
        self.header_timeout: float = settings["header_timeout"]
        self.max_header_bytes: int = settings["max_header_bytes"]
        self.keep_alive: float = settings["keep_alive"]
        #: a reload is under way: connections stop after their current request
        self.releasing = False
        #: connection -> when its request is due (time.monotonic())
        self.deadlines: dict[IsolateConnection, float] = {}
        self.connections: set[IsolateConnection] = set()
        #: the Date and Server headers every response starts with (as uvicorn's on the host)
        self.default_head = b""
        self._by_host: dict[str, bool] = {}
        self._hosts: dict[str, str] = {}
        self._trusted: dict[str, bool] = {}
        self._proxies = [p.strip() for p in os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1").split(",")]
        self._logs: list[list[Any]] = []
        self._closed: list[int] = []
        self.loop = asyncio.get_running_loop()
        self._date = 0.0
        self._tick()

    # -- connections --------------------------------------------------------------------------
    def connection(self, conn: socket.socket, data: bytes, meta: dict[str, Any]) -> None:
        """A connection the host handed over, with the bytes it read of its first request."""
        conn.setblocking(False)
        keep = conn.dup()  # to end the connection for the client: the host holds a copy too

        def make() -> IsolateConnection:
            return IsolateConnection(self, meta["id"], meta["slot"], keep, data)

        task = self.loop.create_task(self.loop.connect_accepted_socket(make, conn))

        def failed(t: asyncio.Task[Any]) -> None:  # never served: our copy goes too
            if not t.cancelled() and t.exception() is not None:
                keep.close()
        task.add_done_callback(failed)

    def release(self) -> None:
        """A reload: idle connections stop being read now, busy ones after their response;
        the host gives them to the next isolate (edgelet.http_slots.RELEASED)."""
        self.releasing = True
        for conn in list(self.connections):
            if conn.idle:
                conn.release()

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
            self.default_head = b"date: %s\r\nserver: uvicorn\r\n" % formatdate(now, usegmt=True).encode()
        if self.deadlines:
            now = time.monotonic()
            for conn, due in list(self.deadlines.items()):
                if due <= now:
                    del self.deadlines[conn]
                    conn.timed_out(self.request_timeout)
        self.loop.call_later(TICK_S, self._tick)

    # -- routing ------------------------------------------------------------------------------
    def owns(self, conn: IsolateConnection, req: ConnRequest, upgrade: bool) -> bool:
        """Whether this isolate answers the request whose head ``req`` holds: not an upgrade,
        not ``/cdn-cgi/``, for this Worker (a bad Host is answered 400 here). Sets the
        request's validated host and its scheme on the way."""
        if upgrade:
            return False
        target = req.target
        if target.startswith(b"/cdn-cgi/"):
            return False
        if not target.startswith(b"/"):
            return True  # not a path: 400 here
        if b"%" in target:
            path = target.split(b"?", 1)[0].decode("latin-1")
            if urllib.parse.unquote(path).startswith("/cdn-cgi/"):
                return False
        value = None
        proto = None
        for key, v in req.headers:
            if key == "host":
                if value is not None:
                    return True  # several Host headers: 400 here
                value = v
            elif key == "x-forwarded-proto":
                proto = v
        if proto is not None:
            self._forwarded(conn, req, proto)
        if not value:
            sockname = conn.transport.get_extra_info("sockname")
            if not sockname:
                return self.primary == self.worker
            ip, port = sockname[0], sockname[1]
            req.host = host = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        else:
            host = self._hosts.get(value)  # type: ignore[assignment]
            if host is None:
                try:
                    host = _checked_host(value.encode("latin-1"))
                except (BadRequest, UnicodeEncodeError):
                    return True
                if len(self._hosts) < 256:
                    self._hosts[value] = host
            req.host = host
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

    def _forwarded(self, conn: IsolateConnection, req: ConnRequest, proto: str) -> None:
        """X-Forwarded-Proto from a trusted proxy (FORWARDED_ALLOW_IPS, 127.0.0.1 unless
        set: uvicorn's rule on the host) sets the scheme of the Worker's URL."""
        proto = proto.strip()
        if proto not in _SCHEMES:
            return
        peer = conn.peer()
        ip = peer[0] if peer else None
        if ip is None:
            return
        trusted = self._trusted.get(ip)
        if trusted is None:
            trusted = _trusted(ip, self._proxies)
            if len(self._trusted) < 256:
                self._trusted[ip] = trusted
        if trusted:
            req.scheme = proto

    def host_of(self, conn: IsolateConnection, req: ConnRequest) -> str:
        """The validated host of a request ``owns`` could not find one for: raises
        BadRequest with the message the host path gives."""
        sockname = conn.transport.get_extra_info("sockname")
        scope = {"raw_path": req.target.split(b"?", 1)[0], "path": "",
                 "headers": [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in req.headers],
                 "server": tuple(sockname[:2]) if sockname else None}
        return request_host(scope)


def _trusted(ip: str, proxies: list[str]) -> bool:
    """Whether ``ip`` is one of the trusted proxies (addresses, networks or ``*``)."""
    for item in proxies:
        if item == "*" or item == ip:
            return True
        if "/" in item:
            try:
                if ipaddress.ip_address(ip) in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
    return False


__all__ = ["HttpServer", "on_call"]
