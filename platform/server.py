"""The HTTP front: routes requests to Workers by host name, keeps ``/cdn-cgi/`` for itself.

Worker traffic takes a raw ASGI path (no framework in the hot loop: read the body, one
channel call, write the answer); the platform's own ``/cdn-cgi/`` routes use starlette.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from edgelet.api import CODE_TOO_LARGE, ApiError, api_route, fail, ok
from edgelet.host import Host, error_response
from edgelet.http_request import (  # noqa: F401  (re-exported: tests and tools import them from here)
    DEFAULT_MAX_BODY,
    STREAM_AFTER,
    BadRequest,
    _checked_host,
    _content_length,
    _may_have_body,
    _not_an_upgrade,
    _raw_headers,
    _url,
    is_latin1,
    request_host,
)
from edgelet.openapi import OBJECT_LIST, Op, document, route
from edgelet.response_stream import StreamCutShort

log = logging.getLogger("edgelet.http")

#: where the control API is mounted
API_PREFIX = "/cdn-cgi/edgelet/api"
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
        #: Host header value -> Worker, filled by _worker_for_host
        self._workers_by_host: dict[str, str] = {}
        self._interceptors = [p for p in host.plugins
                              if type(p).intercept is not _base_intercept()]
        self._control: Starlette | None = None  # built when first needed (``control``)
        #: tasks running a Worker request now, answered 503 if the platform stops meanwhile
        self._inflight: set[asyncio.Task[Any]] = set()
        self.closing = False
        #: set when the platform starts stopping: a control route that streams until
        #: something happens (a workflow's event stream) ends on it, as ``tail`` does on
        #: the log bus's close, instead of holding the shutdown until uvicorn cancels it
        self.stopping = asyncio.Event()
        _quiet_cut_short()

    def begin_shutdown(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """The platform is stopping: end ``tail`` streams now, requests after ``grace``."""
        if self.closing:
            return
        self.closing = True
        self.host.logbus.close()
        self.stopping.set()
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
        worker = self.primary
        if name.endswith(".localhost"):
            candidate = name[: -len(".localhost")]
            if candidate in self.workers:
                worker = candidate
        if len(self._workers_by_host) < 256:  # clients send the same few Host values
            self._workers_by_host[host] = worker
        return worker

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        path: str = scope["path"]
        try:
            host = request_host(scope)  # read once: it names the Worker and builds the URL
        except BadRequest as exc:
            log.info("%s %s 400 (%s)", scope["method"], path, exc)
            await self._plain(send, 400, str(exc))
            return
        if path.startswith("/cdn-cgi/"):
            await self._control_request(scope, receive, send)
            return
        timed = log.isEnabledFor(logging.INFO)
        started = time.perf_counter() if timed else 0.0
        worker = self._workers_by_host.get(host) or self._worker_for_host(host)
        if _may_have_body(scope["headers"]):
            body = await self._read_body(scope, receive, send, envelope=False,
                                         stream=self.host.streams_request_bodies(worker))
            if body is None:
                return
            if not isinstance(body, bytes):  # a large body, sent to the Worker as it arrives
                await self._fetch_streaming_body(scope, send, worker, host, body)
                return
        else:  # nothing to read: uvicorn has the request whole (no receive(), no frame)
            body = b""
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
                answer = await self.host.fetch(worker, scope["method"], url, headers, body, stream=True)
        except asyncio.CancelledError:
            if not self.closing:
                raise
            task.uncancel()
            answer = error_response(503, f"edgelet dev is stopping: Worker {worker!r} did not finish "
                                         f"this request within {SHUTDOWN_GRACE_S:g} s of the stop")
        finally:
            self._inflight.discard(task)
        status, out_headers, out_body = answer
        if status == 101:  # a WebSocket answer to a request that asked for none
            if not isinstance(out_body, bytes):
                await out_body.aclose()  # a body it streams: cancelled in the isolate
            status, out_headers, out_body = _not_an_upgrade(worker, path)
        try:
            raw_headers = _raw_headers(out_headers)
        except UnicodeEncodeError:
            status, raw_headers, out_body = await _bad_header(worker, f"{scope['method']} {path}",
                                                              out_headers, out_body)
        if isinstance(out_body, bytes):
            await send({"type": "http.response.start", "status": status,
                        "headers": raw_headers + [(b"content-length", str(len(out_body)).encode())]})
            await send({"type": "http.response.body", "body": out_body})
        else:
            await _send_stream(send, receive, status, raw_headers, out_body,
                               worker=worker, what=f"{scope['method']} {path}")
        if timed:
            log.info("%s %s %s %d (%.1f ms)", worker, scope["method"], path, status,
                     (time.perf_counter() - started) * 1000, extra={"worker": worker})

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """An upgrade request: the Worker's fetch decides, edgelet.websockets carries it."""
        from edgelet.websockets import deny
        try:
            host = request_host(scope)
        except BadRequest as exc:
            await deny(scope, send, 400, [["content-type", "text/plain;charset=UTF-8"]],
                       str(exc).encode())
            return
        if scope["path"].startswith("/cdn-cgi/"):
            await deny(scope, send, 404, [["content-type", "text/plain;charset=UTF-8"]],
                       b"/cdn-cgi/ paths take no WebSockets")
            return
        url = _url({**scope, "scheme": "https" if scope.get("scheme") == "wss" else "http"}, host)
        await self.host.websockets.serve(scope, receive, send, self._worker_for_host(host), url)

    async def _read_body(self, scope: dict[str, Any], receive: Any, send: Any, *,
                         envelope: bool, stream: bool = False) -> Any:
        """The whole request body, or None when the request must not run: it is over
        ``--max-body-size`` (answered 413 here) or the client went away before sending all
        of it (nothing to answer; a body cut short never reaches a Worker or a store).

        With ``stream``, a body still arriving after :data:`STREAM_AFTER` bytes is returned
        as an edgelet.request_body.StreamedBody holding what came so far (see
        _fetch_streaming_body): the Worker then runs while the rest arrives. A smaller body
        is always read whole first, so one cut short never reaches the Worker (SPEC 5)."""
        declared = _content_length(scope["headers"])
        if declared is not None and declared > self.max_body:
            await self._too_large(scope, send, envelope)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                log.info("%s %s: the client went away after %d of %s body bytes; not run",
                         scope["method"], scope["path"], size,
                         declared if declared is not None else "its")
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(scope, send, envelope)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if stream and size > STREAM_AFTER:
                from edgelet.request_body import StreamedBody
                return StreamedBody(b"".join(chunks), receive, max_body=self.max_body, declared=declared,
                                    what=f"{scope['method']} {scope['path']}")

    async def _fetch_streaming_body(self, scope: dict[str, Any], send: Any, worker: str,
                                    host: str, body: Any) -> None:
        """Run the Worker while its request body arrives (edgelet.request_body): the same
        answer as a whole body's, except that the body's failure decides: over the limit
        is 413 whatever the Worker said, and a client gone mid-body gets nothing."""
        started = time.perf_counter()
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            answer = None
            for plugin in self._interceptors:  # static assets: GET/HEAD, which carry no body
                answer = await plugin.intercept(worker, [scope["method"], _url(scope, host), headers, b""])
                if answer is not None:
                    break
            if answer is None:
                answer = await self.host.fetch(worker, scope["method"], _url(scope, host), headers,
                                               body, stream=True)
            status, out_headers, out_body = answer
            if body.failure is not None or status == 101:
                if not isinstance(out_body, bytes):
                    await out_body.aclose()
                if body.failure == "gone":
                    return
                if body.failure == "too_large":
                    await self._too_large(scope, send, False)
                    return
                status, out_headers, out_body = _not_an_upgrade(worker, scope["path"])
            try:
                raw_headers = _raw_headers(out_headers)
            except UnicodeEncodeError:
                status, raw_headers, out_body = await _bad_header(
                    worker, f"{scope['method']} {scope['path']}", out_headers, out_body)
            if isinstance(out_body, bytes):
                await send({"type": "http.response.start", "status": status,
                            "headers": raw_headers + [(b"content-length", str(len(out_body)).encode())]})
                await send({"type": "http.response.body", "body": out_body})
            else:
                await _send_stream(send, body.receive_after, status, raw_headers, out_body,
                                   worker=worker, what=f"{scope['method']} {scope['path']}")
        except asyncio.CancelledError:
            if not self.closing:
                raise
            task.uncancel()
            await self._plain(send, 503, f"edgelet dev is stopping: Worker {worker!r} did not "
                                         f"finish this request in time")
            return
        finally:
            body.stop()
            self._inflight.discard(task)
        log.info("%s %s %s %d (%.1f ms, streamed request body)", worker, scope["method"],
                 scope["path"], status, (time.perf_counter() - started) * 1000, extra={"worker": worker})

    async def _too_large(self, scope: dict[str, Any], send: Any, envelope: bool) -> None:
        log.info("%s %s 413 (body over %d bytes)", scope["method"], scope["path"], self.max_body)
        text = (f"request body is larger than the limit of {self.max_body} bytes; send less, or "
                f"start `edgelet dev` with a larger --max-body-size")
        if envelope:
            await _send_response(fail(413, CODE_TOO_LARGE, text), send)
        else:
            await self._plain(send, 413, text)

    @staticmethod
    async def _plain(send: Any, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain;charset=UTF-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- /cdn-cgi/ -------------------------------------------------------------------------
    async def _control_request(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Every ``/cdn-cgi/`` path: the guard, the body limit, then the starlette routes
        (which get the body already read, so a cut-short body never reaches a route)."""
        if not self._allowed(scope):
            await _send_response(fail(403, 10403, f"{scope['path']} answers only loopback clients "
                                                  f"unless a token is configured: set "
                                                  f"EDGELET_API_TOKEN and send it as "
                                                  f"`Authorization: Bearer <token>`"), send)
            return
        body = await self._read_body(scope, receive, send, envelope=True)
        if body is None:
            return
        handed = False

        async def replay() -> dict[str, Any]:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # a streaming route (tail) waits here for the disconnect

        await self.control(scope, replay, send)

    @property
    def control(self) -> Starlette:
        """The ``/cdn-cgi/`` app (control API, explorer), built at its first request or when
        ``edgelet dev`` warms it right after Ready: the explorer's templates and the plug-ins'
        routes cost tens of milliseconds that need not delay the first Worker request."""
        if self._control is None:
            self._control = self._control_app()
        return self._control

    def _control_app(self) -> Starlette:
        api_routes: list[Any] = [
            route("/workers", api_route(self._list_workers), GET=Op(
                "The Workers this platform runs: name, script, primary, pid, restarts, handlers, crons",
                result=OBJECT_LIST, errors=())),
            route("/tail", self._tail, GET=Op(
                "Stream log lines and platform events as NDJSON until the client goes away",
                media="application/x-ndjson", errors=())),
            route("/openapi.json", self._openapi, GET=Op(
                "This document: the OpenAPI 3.1 description of the control API",
                media="application/json", errors=())),
        ]
        for plugin in self.host.plugins:
            api_routes.extend(plugin.routes())
        self.api_routes = api_routes
        from edgelet.explorer import explorer_routes
        routes = [
            Route("/cdn-cgi/handler/scheduled", self._scheduled, methods=["GET", "POST"]),
            Mount(API_PREFIX, routes=api_routes),
            *explorer_routes(API_PREFIX),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
        app.state.stopping = self.stopping
        return app

    def _allowed(self, scope: dict[str, Any]) -> bool:
        if self.api_token:
            expected = b"Bearer " + self.api_token.encode()
            for key, value in scope["headers"]:  # bytes as sent: any encoding compares safely
                if key == b"authorization" and hmac.compare_digest(value, expected):
                    return True
        client = scope.get("client")
        if client is None:  # in-process (tests)
            return True
        try:
            return ipaddress.ip_address(client[0]).is_loopback
        except ValueError:
            return False

    async def _scheduled(self, request: Request) -> Response:
        """Miniflare's trigger: ``?cron=`` (default ``* * * * *``), ``?time=`` (the event's
        ``scheduledTime``, epoch ms; default now), ``?format=json``, and our ``?worker=``."""
        params = request.query_params
        cron = params.get("cron", "* * * * *")
        worker = params.get("worker") or self.worker_for(request.scope["headers"])
        as_json = params.get("format") == "json"
        if worker not in self.workers:
            known = ", ".join(sorted(self.workers))
            return PlainTextResponse(f"no Worker named {worker!r}; Workers: {known} (pick one with "
                                     f"?worker=NAME or its NAME.localhost host)", status_code=404)
        when_ms = None
        time_text = params.get("time", "").strip()
        if time_text:
            if not (time_text.isascii() and time_text.isdecimal() and len(time_text) <= 15):
                return PlainTextResponse(
                    f"time={time_text[:40]!r} is not a time: pass the event's scheduledTime as epoch "
                    f"milliseconds, e.g. time=1700000000000, or leave time out for now",
                    status_code=400)
            when_ms = int(time_text)
        try:
            await self.host.scheduled(worker, cron, when_ms)
        except Exception as exc:
            if as_json:
                return JSONResponse({"outcome": "exception", "noRetry": False, "error": str(exc)},
                                    status_code=500)
            return PlainTextResponse(f"scheduled handler of {worker!r} failed: {exc}", status_code=500)
        if as_json:
            return JSONResponse({"outcome": "ok", "noRetry": False})
        return PlainTextResponse("Ran scheduled event")

    async def _openapi(self, request: Request) -> Response:
        from importlib.metadata import version
        # built per request: the names listed for path parameters follow the running config
        return JSONResponse(document(self.api_routes, prefix=API_PREFIX, version=version("edgelet")))

    async def _list_workers(self, request: Request) -> Response:
        result = []
        for w in self.host.config.workers:
            iso = self.host.isolates.get(w.name)
            result.append({"name": w.name, "main": str(w.main), "primary": w.name == self.primary,
                           "pid": getattr(iso, "pid", None), "restarts": getattr(iso, "restarts", 0),
                           "handlers": (getattr(iso, "info", {}) or {}).get("handlers", []),
                           "crons": w.crons, "bindings": self._bindings_of(w)})
        return ok(result)

    def _bindings_of(self, worker: Any) -> list[dict[str, Any]]:
        """What a Worker's ``env`` holds, per plug-in: ``{kind, name, options}`` (for the
        explorer's Workers section and scripts)."""
        out: list[dict[str, Any]] = []
        for plugin in self.host.plugins:
            try:
                found = plugin.env_bindings(worker)
            except Exception:  # a plug-in with nothing for this Worker
                continue
            out += [{"kind": plugin.kind, "name": name, "options": options}
                    for name, options in sorted(found.items())]
        return out

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


async def _send_stream(send: Any, receive: Any, status: int, headers: list[tuple[bytes, bytes]],
                       chunks: Any, *, worker: str, what: str) -> None:
    """A body the Worker streams: each chunk goes to the client as it arrives (chunked
    transfer encoding). A client that goes away ends the Worker's stream: uvicorn's send()
    stays silent after a disconnect, so a watcher on receive() stops the sending.

    A body cut short (the Worker's body raised, its isolate ended: StreamCutShort) is
    logged and re-raised after the chunks sent so far, so that uvicorn closes the
    connection without the last chunk and the client sees an incomplete body, never a
    complete-looking short one (uvicorn's own "Exception in ASGI application" for it is
    filtered out: the line logged here says what happened)."""
    sender = asyncio.current_task()
    state = {"finished": False, "gone": False}
    sent = 0

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not state["finished"] and sender is not None:
            state["gone"] = True
            sender.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        state["finished"] = True
        await send({"type": "http.response.body", "body": b""})
    except StreamCutShort as exc:
        log.warning("%s %s: the response body was cut short after %d bytes: %s; the connection "
                    "is closed without the body's end, so the client sees it incomplete",
                    worker, what, sent, exc, extra={"worker": worker})
        raise
    except asyncio.CancelledError:
        if not state["gone"]:
            raise
        if sender is not None:
            sender.uncancel()  # our own cancel: the request ends normally
    finally:
        state["finished"] = True
        watcher.cancel()
        await chunks.aclose()


async def _bad_header(worker: str, what: str, headers: list[list[str]],
                      body: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 500 for a Worker's answer with a header HTTP cannot carry (a character beyond
    Latin-1: header values are bytes; Cloudflare's Headers refuses such a value with a
    TypeError), logged as the Worker's error."""
    if not isinstance(body, bytes):
        await body.aclose()
    name, value = next(((k, v) for k, v in headers if not is_latin1(k) or not is_latin1(v)), ("?", "?"))
    text = (f"Worker {worker!r} answered {what} with header {name!r}: {value!r:.100}, which is not "
            f"Latin-1 text; HTTP header values are bytes: percent-encode the value "
            f"(urllib.parse.quote) or keep it to ASCII")
    log.error(text, extra={"worker": worker})
    _, out_headers, out_body = error_response(500, text)
    return 500, _raw_headers(out_headers), out_body



class _CutShortLogged(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application" for a StreamCutShort: _send_stream
    logged why the body ended early, and the traceback would only point at edgelet."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamCutShort)


def _quiet_cut_short() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _CutShortLogged) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_CutShortLogged())


async def _send_response(response: Response, send: Any) -> None:
    """Send a starlette response outside starlette (it needs no scope or receive)."""
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """starlette's 404/405 under ``/cdn-cgi/``, in the envelope with a hint."""
    assert isinstance(exc, HTTPException)
    hint = ("; the routes are listed in /cdn-cgi/edgelet/api/openapi.json" if exc.status_code in (404, 405)
            else "")
    return fail(exc.status_code, 10000 + exc.status_code,
                f"{request.method} {request.url.path}: {exc.detail}{hint}")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["EdgeletApp", "ApiError", "error_response"]
