"""Serve an ASGI app (FastAPI, Starlette, MCP servers) from a Worker: ``workers.asgi.fetch``.

Lifespan, as Cloudflare's adapter delivers it: startup before each request and shutdown
after it, with the state startup filled copied into the request's scope. What an app can
observe of that is kept; what it cannot is skipped, so a framework app pays no per-request
cost a plain Worker does not:

- an app without lifespan support (it raises or returns on the lifespan scope, as Django
  does) is found out on its first request and never asked again;
- a Starlette/FastAPI app whose lifespan is the framework's default with no startup or
  shutdown handlers has nothing to observe, so no cycle is run at all.

A response whose first body message says ``more_body`` is streamed: the Worker's Response
gets an async iterator of the app's chunks, sent to the client as they are produced.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from edgelet.runtime.http_types import Request, Response
from workers.gateway import BaseOptions

ASGI = {"spec_version": "2.0", "version": "3.0"}
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})
#: request bodies reach the app in messages of at most this many bytes
BODY_CHUNK = 65536
logger = logging.getLogger("asgi")
background_tasks: set[asyncio.Future[Any]] = set()


@dataclass(frozen=True, kw_only=True)
class Options(BaseOptions):
    """Options for the ASGI adapter"""


DEFAULT_OPTIONS = Options()

#: app -> "none" (no lifespan to run) or "full" (run a cycle around each request); weak, so
#: apps built per request (Cloudflare's MCP example does) do not pile up here
_LIFESPAN_MODE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
#: the same for apps that cannot be weakly referenced, by id
_LIFESPAN_MODE_BY_ID: dict[int, str] = {}


def _lifespan_mode(app: Any) -> str | None:
    try:
        return _LIFESPAN_MODE.get(app)
    except TypeError:
        return _LIFESPAN_MODE_BY_ID.get(id(app))


def _set_lifespan_mode(app: Any, mode: str) -> str:
    try:
        _LIFESPAN_MODE[app] = mode
    except TypeError:
        _LIFESPAN_MODE_BY_ID[id(app)] = mode
    return mode


def run_in_background(coro: Any) -> asyncio.Future[Any]:
    fut = asyncio.ensure_future(coro)
    background_tasks.add(fut)

    def _on_done(f: asyncio.Future[Any]) -> None:
        background_tasks.discard(f)
        if not f.cancelled() and f.exception() is not None:
            logger.error("Unhandled exception in background task", exc_info=f.exception())

    fut.add_done_callback(_on_done)
    return fut


def request_to_scope(req: Any, env: Any, ws: bool = False, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ASGI scope of a Worker's request, with ``env`` in it as on Cloudflare."""
    url = urlsplit(req.url)
    raw_path = url.path or "/"
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.items()]
    scope: dict[str, Any] = {
        "asgi": ASGI,
        "headers": headers,
        "http_version": "1.1",
        "method": str(req.method),
        "scheme": ("wss" if url.scheme == "https" else "ws") if ws else url.scheme,
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "root_path": "",
        "query_string": url.query.encode("latin-1"),
        "type": "websocket" if ws else "http",
        "env": env,
    }
    if url.hostname:
        scope["server"] = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    if state is not None:
        scope["state"] = dict(state)
    return scope


def _default_lifespan_only(app: Any) -> bool:
    """True for a Starlette/FastAPI app with the framework's default lifespan and no
    startup/shutdown handlers: a lifespan cycle would do nothing the app can see."""
    router = getattr(app, "router", None)
    if router is None or type(getattr(router, "lifespan_context", None)).__name__ != "_DefaultLifespan":
        return False
    return not getattr(router, "on_startup", None) and not getattr(router, "on_shutdown", None)


async def start_application(app: Any) -> tuple[Any, dict[str, Any]]:
    """Run the app's lifespan startup; return (shutdown, state). Apps without lifespan
    support are served anyway, as the ASGI spec says."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    startup: asyncio.Future[bool] = loop.create_future()
    shutdown_complete: asyncio.Future[None] = loop.create_future()
    queue.put_nowait({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            if not startup.done():
                startup.set_result(True)
        elif kind == "lifespan.startup.failed":
            if not startup.done():
                startup.set_exception(RuntimeError(message.get("message") or "ASGI lifespan startup failed"))
        elif kind == "lifespan.shutdown.complete":
            if not shutdown_complete.done():
                shutdown_complete.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            if not shutdown_complete.done():
                shutdown_complete.set_exception(
                    RuntimeError(message.get("message") or "ASGI lifespan shutdown failed"))
        else:
            raise RuntimeError(f"Unexpected lifespan event {kind}")

    async def run_lifespan() -> None:
        try:
            await app({"asgi": ASGI, "state": state, "type": "lifespan"}, receive, send)
            if not startup.done():
                startup.set_result(False)
            elif not shutdown_complete.done():
                shutdown_complete.set_result(None)
        except Exception as exc:
            if not startup.done():
                logger.debug("ASGI lifespan raised before reporting startup; treating the app "
                             "as not supporting lifespan", exc_info=exc)
                startup.set_result(False)
                return
            logger.exception("Exception in ASGI lifespan application", exc_info=exc)
            if not shutdown_complete.done():
                shutdown_complete.set_result(None)

    run_in_background(run_lifespan())
    supported = await startup

    async def shutdown() -> None:
        if supported:
            queue.put_nowait({"type": "lifespan.shutdown"})
            await shutdown_complete

    if not supported:
        _set_lifespan_mode(app, "none")
    return shutdown, state


async def _no_shutdown() -> None:
    return None


async def process_request(app: Any, req: Any, env: Any, ctx: Any = None,
                          state: dict[str, Any] | None = None,
                          options: Options = DEFAULT_OPTIONS) -> tuple[Response, asyncio.Future[Any]]:
    """Run the app for one request; return the Response (as soon as its head is known,
    for a streamed body) and the task running the app."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Response] = loop.create_future()
    finished = asyncio.Event()
    source = req._source if isinstance(req, Request) else None
    if source is not None:  # a large body still arriving: hand it over as it comes
        body = b""
        incoming: Any = source.chunks()
        req._source = None
    else:
        body = req._body if isinstance(req, Request) else await req.bytes()
        incoming = None
    head: dict[str, Any] = {}
    chunks: asyncio.Queue[bytes | None] | None = None
    offset = 0
    pending = b""

    async def receive() -> dict[str, Any]:
        nonlocal offset, incoming, pending
        if incoming is not None or pending:
            if not pending:
                try:
                    pending = await incoming.__anext__()
                except StopAsyncIteration:
                    incoming = None
                    offset = -1
                    return {"type": "http.request", "body": b"", "more_body": False}
                except ConnectionError:  # the client went away mid-body (RequestBodyError)
                    incoming = None
                    offset = -1
                    return {"type": "http.disconnect"}
            chunk, pending = pending[:BODY_CHUNK], pending[BODY_CHUNK:]
            return {"type": "http.request", "body": chunk, "more_body": True}
        if offset <= len(body) and offset >= 0:
            chunk = body[offset:offset + BODY_CHUNK]
            offset += BODY_CHUNK
            more = offset < len(body)
            if not more:
                offset = -1
            return {"type": "http.request", "body": chunk, "more_body": more}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def stream() -> Any:
        assert chunks is not None
        while True:
            chunk = await chunks.get()
            if chunk is None:
                return
            yield chunk

    async def send(message: dict[str, Any]) -> None:
        nonlocal chunks
        kind = message["type"]
        if kind == "http.response.start":
            head["status"] = message["status"]
            head["headers"] = [(k.decode("latin-1"), v.decode("latin-1"))
                               for k, v in message.get("headers", [])]
        elif kind == "http.response.body":
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if chunks is not None:
                if data:
                    chunks.put_nowait(bytes(data))
                if not more:
                    chunks.put_nowait(None)
                    finished.set()
            elif more:
                chunks = asyncio.Queue()
                if data:
                    chunks.put_nowait(bytes(data))
                result.set_result(_response(stream(), head))
            else:
                status = head.get("status", 200)
                result.set_result(_response(None if status in NULL_BODY_STATUSES else bytes(data), head))
                finished.set()

    async def run_app() -> None:
        try:
            await app(request_to_scope(req, env, state=state), receive, send)
            if not result.done():
                raise RuntimeError("The application did not generate a response")
        except Exception as exc:
            if not result.done():
                result.set_exception(exc)
            else:
                logger.exception("Exception in ASGI application after response started")
            finished.set()
        finally:
            if chunks is not None and not finished.is_set():
                chunks.put_nowait(None)  # the app ended mid-stream: end the body
                finished.set()

    task = asyncio.ensure_future(run_app())
    try:
        response = await result
    except Exception:
        await task
        raise
    if chunks is None:
        await task
    return response, task


def _response(body: Any, head: dict[str, Any]) -> Response:
    if "status" not in head:
        raise RuntimeError("The ASGI application sent a body before http.response.start")
    return Response(body, head["status"], "", head["headers"])


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None, *, options: Options | None = None) -> Response:
    """Answer ``req`` with the ASGI ``app``; ``env`` is in the scope (``scope["env"]``).

    A WebSocket upgrade runs the app's ``websocket`` scope (see :func:`websocket`)."""
    if is_websocket_upgrade(req):
        return await websocket(app, req, env)
    mode = _lifespan_mode(app)
    if mode is None:
        mode = _set_lifespan_mode(app, "none" if _default_lifespan_only(app) else "full")
        if mode == "full":
            # found out on this first cycle whether the app supports lifespan at all
            shutdown, state = await start_application(app)
        else:
            shutdown, state = _no_shutdown, None
    elif mode == "full":
        shutdown, state = await start_application(app)
    else:
        shutdown, state = _no_shutdown, None
    try:
        response, task = await process_request(app, req, env, ctx, state=state,
                                               options=options or DEFAULT_OPTIONS)
    except Exception:
        logger.exception("ASGI request failed")
        await shutdown()
        raise
    if task.done():
        await shutdown()
    else:
        async def finalize() -> None:
            try:
                await task
            finally:
                await shutdown()

        run_in_background(finalize())
    return response


def is_websocket_upgrade(req: Any) -> bool:
    """True for a request that asks for a WebSocket (``Upgrade: websocket``)."""
    return (req.headers.get("upgrade") or "").lower() == "websocket"


async def websocket(app: Any, req: Any, env: Any = None) -> Response:
    """Serve the app's ``websocket`` scope over a WebSocketPair and answer the upgrade.

    As Cloudflare's adapter does, the app gets ``websocket.connect`` at once, the client's
    text and binary frames as ``websocket.receive`` (``text`` / ``bytes``) and the client's
    close as ``websocket.disconnect`` with its code. Beyond it (what uvicorn does and apps
    are written against): the 101 leaves when the app sends ``websocket.accept``; an app
    that closes before accepting is answered 403, one that raises first 500; the app's
    ``websocket.close`` closes the socket with its code and reason; an app that returns
    with the socket open closes it with 1000.
    """
    from edgelet.runtime.websocket import WebSocketPair

    client, server = WebSocketPair()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    queue.put_nowait({"type": "websocket.connect"})
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Response] = loop.create_future()
    state = {"accepted": False, "closed": False}

    def on_message(event: Any) -> None:
        data = event.data
        if isinstance(data, str):
            queue.put_nowait({"type": "websocket.receive", "text": data})
        else:
            queue.put_nowait({"type": "websocket.receive", "bytes": bytes(data)})

    def on_close(event: Any) -> None:
        state["closed"] = True
        queue.put_nowait({"type": "websocket.disconnect", "code": event.code,
                          "reason": getattr(event, "reason", "")})

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if state["accepted"]:
                raise RuntimeError("websocket.accept sent twice")
            state["accepted"] = True
            server.accept()
            server.addEventListener("message", on_message)
            server.addEventListener("close", on_close)
            headers = [(k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in message.get("headers") or []]
            if message.get("subprotocol"):  # the app's pick reaches the client's 101 (uvicorn's way)
                headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            answer.set_result(Response(None, status=101, headers=headers, web_socket=client))
        elif kind == "websocket.send":
            if not state["accepted"]:
                raise RuntimeError("websocket.send before websocket.accept")
            if state["closed"]:
                raise OSError("the client closed the WebSocket")  # uvicorn's ClientDisconnected is an OSError
            data = message.get("bytes")
            server.send(bytes(data) if data is not None else message.get("text") or "")
        elif kind == "websocket.close":
            if not state["accepted"]:
                if not answer.done():
                    answer.set_result(Response("WebSocket connection refused by the application",
                                               status=403))
                return
            if not state["closed"]:
                state["closed"] = True
                server.close(message.get("code") or 1000, message.get("reason") or "")
        elif kind == "websocket.http.response.start":
            head = {"status": message["status"],
                    "headers": [(k.decode("latin-1"), v.decode("latin-1"))
                                for k, v in message.get("headers", [])]}
            answer.set_result(_response(b"", head))
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} on a WebSocket")

    scope = request_to_scope(req, env, ws=True)
    scope["subprotocols"] = [p.strip() for p in (req.headers.get("sec-websocket-protocol") or "").split(",")
                             if p.strip()]

    async def run_app() -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            if not answer.done():
                answer.set_exception(exc)
                return
            logger.exception("Exception in ASGI WebSocket application")
            if state["accepted"] and not state["closed"]:
                state["closed"] = True
                server.close(1011, "internal error")
            return
        if not answer.done():
            answer.set_result(Response("the application closed the WebSocket without accepting it",
                                       status=403))
        elif state["accepted"] and not state["closed"]:
            state["closed"] = True
            server.close(1000, "")

    run_in_background(run_app())
    return await answer


def entrypoint(app: Any, *, options: Options | None = None) -> type:
    """The default Worker entrypoint for an ASGI application."""
    from edgelet.runtime.entrypoints import WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Response:
            return await fetch(app, request, self.env, self.ctx, options=options)

    return Default


def __getattr__(name: str) -> Any:
    """``asgi.env``: a FastAPI dependency giving the Worker's env (``Depends(asgi.env)``
    style: ``env = asgi.env`` is already wrapped in ``Depends``)."""
    if name == "env":
        from fastapi import Depends
        from fastapi import Request as FastAPIRequest

        async def env(request: FastAPIRequest) -> Any:
            return request.scope["env"]

        # the real class, not the string this module's postponed annotations would leave
        env.__annotations__ = {"request": FastAPIRequest, "return": Any}
        return Depends(env)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
