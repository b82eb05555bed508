"""Serve a WSGI app (Flask, Django) from a Worker: ``workers.wsgi.fetch(app, request, env)``.

The app runs on the isolate's event loop thread, as on Cloudflare. A response that declares
its Content-Length is sent whole; one without (a generator: Flask's ``stream_with_context``,
Django's ``StreamingHttpResponse``) is streamed chunk by chunk.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from edgelet.runtime.http_types import Request, Response  # noqa: F401 - Request: the SDK module has it
from workers.gateway import BaseOptions

logger = logging.getLogger("wsgi")
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})


@dataclass(frozen=True, kw_only=True)
class Options(BaseOptions):
    """Options for the WSGI adapter"""


DEFAULT_OPTIONS = Options()


def build_environ(req: Any, env: Any, body: bytes | io.IOBase) -> dict[str, Any]:
    """The WSGI environ of a Worker's request; ``environ["workers.env"]`` is its env."""
    if isinstance(body, (bytes, bytearray)):
        wsgi_input: Any = io.BytesIO(body)
        length: int | None = len(body)
    else:
        wsgi_input, length = body, None
    url = urlsplit(req.url)
    if not url.scheme:
        raise ValueError(f"Request URL is not absolute: {req.url!r}")
    method = req.method
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(getattr(method, "value", method)),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(url.path or "/").encode("utf-8").decode("latin-1"),
        "QUERY_STRING": url.query,
        "SERVER_NAME": url.hostname or "localhost",
        "SERVER_PORT": str(url.port) if url.port else ("443" if url.scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url.scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "workers.env": env,
    }
    for key, value in req.headers.items():
        name = key.upper().replace("-", "_")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
        elif "HTTP_" + name in environ:
            environ["HTTP_" + name] += "," + value
        else:
            environ["HTTP_" + name] = value
    if "CONTENT_LENGTH" not in environ and length:
        environ["CONTENT_LENGTH"] = str(length)
    return environ


def _status_code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        raise ValueError(f"WSGI status {status!r} does not start with a number") from None


def process_request(app: Any, req: Any, env: Any, body: bytes | io.IOBase,
                    options: Options = DEFAULT_OPTIONS) -> Response:
    """Call the app and build the Response (whole, or streamed when it has no length)."""
    environ = build_environ(req, env, body)
    state: dict[str, Any] = {"status": None, "headers": None}
    written: list[bytes] = []

    def write(chunk: bytes) -> None:
        if state["status"] is None:
            raise AssertionError("write() called before start_response()")
        if chunk:
            written.append(bytes(chunk))

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            try:
                if state["status"] is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response() called more than once")
        state["status"], state["headers"] = status, headers
        return write

    # the app, its body's iteration and close() run in one Context: a body that set a
    # context variable when the app ran resets it at its end (Flask's stream_with_context),
    # and a token reset in another Context fails ("was created in a different Context");
    # a streamed body is iterated later, by the task that sends it
    context = contextvars.copy_context()
    result = context.run(app, environ, start_response)

    def close() -> None:
        closer = getattr(result, "close", None)
        if closer is not None:
            context.run(closer)

    iterator = _InContext(context, iter(result))
    try:
        first = b""
        for chunk in iterator:  # some apps call start_response on their first chunk
            if chunk:
                first = bytes(chunk)
                break
    except Exception:
        close()
        raise
    if state["status"] is None:
        close()
        raise RuntimeError("The WSGI application did not call start_response()")
    status = _status_code(state["status"])
    headers = state["headers"]
    sized = any(k.lower() == "content-length" for k, _ in headers)
    if status in NULL_BODY_STATUSES:
        close()
        return Response(None, status, "", headers)
    if sized or isinstance(result, (list, tuple)):
        try:
            rest = [bytes(c) for c in iterator if c]
        finally:
            close()
        return Response(b"".join([*written, first, *rest]), status, "", headers)
    return Response(_stream(written, first, iterator, close), status, "", headers)


class _InContext:
    """An iterator whose every step runs in ``context``."""

    def __init__(self, context: contextvars.Context, iterator: Iterator[Any]) -> None:
        self._context = context
        self._iterator = iterator

    def __iter__(self) -> _InContext:
        return self

    def __next__(self) -> Any:
        return self._context.run(next, self._iterator)


async def _stream(written: list[bytes], first: bytes, iterator: Iterator[Any], close: Any) -> Any:
    try:
        for chunk in written:
            yield chunk
        if first:
            yield first
        for chunk in iterator:
            if chunk:
                yield bytes(chunk)
            await asyncio.sleep(0)  # let the chunk go out before the next is made
    finally:
        close()


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None, *, options: Options | None = None) -> Response:
    """Answer ``req`` with the WSGI ``app``; ``environ["workers.env"]`` is ``env``."""
    body = await req.bytes()
    try:
        return process_request(app, req, env, body, options or DEFAULT_OPTIONS)
    except Exception:
        logger.exception("WSGI request failed")
        raise


def entrypoint(app: Any, *, options: Options | None = None) -> type:
    """The default Worker entrypoint for a WSGI application."""
    from edgelet.runtime.entrypoints import WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Response:
            return await fetch(app, request, self.env, options=options)

    return Default
