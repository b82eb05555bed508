"""The HTTP front: routes requests to Workers by host name, keeps ``/cdn-cgi/`` for itself.

Worker traffic takes a raw ASGI path (no framework in the hot loop: read the body, one
channel call, write the answer); the platform's own ``/cdn-cgi/`` routes use starlette.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from edgelet.api import ApiError, api_route, fail, ok
from edgelet.host import Host, error_response

log = logging.getLogger("edgelet.http")

DEFAULT_MAX_BODY = 100 * 1024 * 1024
#: how long requests in flight may still finish once the platform is asked to stop; then
#: they are answered 503 so that Ctrl-C ends `edgelet dev` at once
SHUTDOWN_GRACE_S = 0.5


class EdgeletApp:
    """ASGI application over a started :class:`Host`."""

    def __init__(self, host: Host, *, max_body: int = DEFAULT_MAX_BODY,
                 api_token: str | None = None) -> None:
        self.host = host
        self.max_body = max_body
        self.api_token = api_token or os.environ.get("EDGELET_API_TOKEN") or None
        self.primary = host.config.primary.name
        self.workers = {w.name for w in host.config.workers}
        self._interceptors = [p for p in host.plugins
                              if type(p).intercept is not _base_intercept()]
        self.control = self._control_app()
        #: tasks running a Worker request now, answered 503 if the platform stops meanwhile
        self._inflight: set[asyncio.Task[Any]] = set()
        self.closing = False

    def begin_shutdown(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """The platform is stopping: end ``tail`` streams now, requests after ``grace``."""
        if self.closing:
            return
        self.closing = True
        self.host.logbus.close()
        asyncio.get_running_loop().call_later(grace, self._abandon_inflight)

    def _abandon_inflight(self) -> None:
        for task in list(self._inflight):
            task.cancel("edgelet dev is stopping")

    # -- routing ------------------------------------------------------------------------
    def worker_for(self, headers: list[tuple[bytes, bytes]]) -> str:
        """``NAME.localhost[:port]`` picks a Worker; anything else is the primary."""
        return self._worker_for_host(_host(headers))

    def _worker_for_host(self, host: str) -> str:
        name = host.split(":", 1)[0].lower()
        if name.endswith(".localhost"):
            candidate = name[: -len(".localhost")]
            if candidate in self.workers:
                return candidate
        return self.primary

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self._plain(send, 404, "edgelet serves HTTP only (no WebSockets yet)")
            return
        path: str = scope["path"]
        if path.startswith("/cdn-cgi/"):
            await self.control(scope, receive, send)
            return
        started = time.perf_counter()
        host = _host(scope["headers"])  # read once: it names the Worker and builds the URL
        worker = self._worker_for_host(host)
        body = await self._read_body(receive, send)
        if body is None:
            log.info("%s %s 413 (body over %d bytes)", scope["method"], path, self.max_body)
            return
        url = _url(scope, host)
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            answer = None
            for plugin in self._interceptors:
                answer = await plugin.intercept(worker, [scope["method"], url, headers, body])
                if answer is not None:
                    break
            if answer is None:
                answer = await self.host.fetch(worker, scope["method"], url, headers, body)
        except asyncio.CancelledError:
            if not self.closing:
                raise
            task.uncancel()
            answer = error_response(503, f"edgelet dev is stopping: Worker {worker!r} did not finish "
                                         f"this request within {SHUTDOWN_GRACE_S:g} s of the stop")
        finally:
            self._inflight.discard(task)
        status, out_headers, out_body = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
                    + [(b"content-length", str(len(out_body)).encode())]})
        await send({"type": "http.response.body", "body": out_body})
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s %s %d (%.1f ms)", worker, scope["method"], path, status,
                     (time.perf_counter() - started) * 1000, extra={"worker": worker})

    async def _read_body(self, receive: Any, send: Any) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._plain(send, 413, f"request body is larger than the limit of "
                                              f"{self.max_body} bytes (--max-body-size)")
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _plain(send: Any, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain;charset=UTF-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- /cdn-cgi/ -------------------------------------------------------------------------
    def _control_app(self) -> Starlette:
        api_routes: list[Any] = [
            Route("/workers", api_route(self._list_workers)),
            Route("/tail", self._tail),
        ]
        for plugin in self.host.plugins:
            api_routes.extend(plugin.routes())
        routes = [
            Route("/cdn-cgi/handler/scheduled", self._scheduled, methods=["GET", "POST"]),
            Mount("/cdn-cgi/edgelet/api", routes=api_routes),
        ]
        app = Starlette(routes=routes)
        inner = app

        async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"].startswith("/cdn-cgi/edgelet/") and not self._allowed(scope):
                response = fail(403, 10403, "the control API answers only loopback clients; "
                                            "set EDGELET_API_TOKEN and send it as a Bearer token")
                await response(scope, receive, send)
                return
            await inner(scope, receive, send)

        return guarded  # type: ignore[return-value]

    def _allowed(self, scope: dict[str, Any]) -> bool:
        if self.api_token:
            for key, value in scope["headers"]:
                if key == b"authorization" and value.decode() == f"Bearer {self.api_token}":
                    return True
        client = scope.get("client")
        if client is None:  # in-process (tests)
            return True
        try:
            return ipaddress.ip_address(client[0]).is_loopback
        except ValueError:
            return False

    async def _scheduled(self, request: Request) -> Response:
        cron = request.query_params.get("cron", "* * * * *")
        worker = request.query_params.get("worker") or self.worker_for(request.scope["headers"])
        if worker not in self.workers:
            return PlainTextResponse(f"no Worker named {worker!r}", status_code=404)
        try:
            await self.host.scheduled(worker, cron)
        except Exception as exc:
            return PlainTextResponse(f"scheduled handler of {worker!r} failed: {exc}", status_code=500)
        return PlainTextResponse("Ran scheduled event")

    async def _list_workers(self, request: Request) -> Response:
        result = []
        for w in self.host.config.workers:
            iso = self.host.isolates.get(w.name)
            result.append({"name": w.name, "main": str(w.main), "primary": w.name == self.primary,
                           "pid": getattr(iso, "pid", None), "restarts": getattr(iso, "restarts", 0),
                           "handlers": (getattr(iso, "info", {}) or {}).get("handlers", []),
                           "crons": w.crons})
        return ok(result)

    async def _tail(self, request: Request) -> Response:
        """NDJSON stream of log lines and platform events until the client goes away."""
        bus = self.host.logbus
        queue = bus.subscribe()

        async def lines() -> Any:
            try:
                yield (json.dumps({"type": "hello", "workers": sorted(self.workers)}) + "\n").encode()
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        yield b"\n"  # keep-alive
                        continue
                    if event is None:  # the platform is stopping: say so, end the stream
                        yield (json.dumps({"type": "bye", "message": "edgelet dev is stopping"})
                               + "\n").encode()
                        return
                    yield (json.dumps(event, default=str) + "\n").encode()
            finally:
                bus.unsubscribe(queue)

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def _base_intercept() -> Any:
    from edgelet.bindings import BindingPlugin
    return BindingPlugin.intercept


def _host(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key == b"host":
            return value.decode("latin-1")
    return "localhost"


def _url(scope: dict[str, Any], host: str) -> str:
    query = scope.get("query_string", b"")
    path = scope.get("raw_path") or scope["path"].encode()
    url = f"{scope.get('scheme', 'http')}://{host}{path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["EdgeletApp", "ApiError", "error_response"]
