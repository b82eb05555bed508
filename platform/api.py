"""The control API's shared pieces: Cloudflare's response envelope, error codes and the one
JSON reader every route uses.

Every route under ``/cdn-cgi/edgelet/api/`` answers ``{success, errors, messages, result}``
so the CLI, tests and scripts handle one shape; plug-ins build their routes with these.
Bad input is a 4xx in the envelope and a fault of the platform (a full disk, a bug) a 5xx in
the envelope: a route never answers a bare text 500.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("edgelet.api")

#: deepest nesting of arrays/objects the API accepts in a JSON document. Real params and
#: payloads are a few levels deep; the limit keeps every later step (msgpack, the Worker's
#: json, the explorer) far from Python's recursion limit.
MAX_JSON_DEPTH = 128

#: Cloudflare-style codes used across routes
CODE_BAD_INPUT = 10001
CODE_TOO_LARGE = 10413
CODE_DISK_FULL = 10507
CODE_INTERNAL = 10500
#: a route that runs the Worker's code (a workflow replay check...) found it broken
CODE_WORKER_FAILED = 10503


class ApiError(Exception):
    """An error a person can act on, with Cloudflare-style numeric code and HTTP status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def ok(result: Any = None, *, status: int = 200, result_info: dict[str, Any] | None = None,
       messages: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": messages or [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    try:
        return JSONResponse(body, status_code=status)
    except ValueError:  # NaN/Infinity a Worker stored (JSON has none): null, as JSON.stringify does
        return JSONResponse(_finite(body), status_code=status)


def _finite(value: Any) -> Any:
    """``value`` with every NaN/Infinity float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def fail(status: int, code: int, message: str) -> Response:
    return JSONResponse({"success": False, "errors": [{"code": code, "message": message}],
                         "messages": [], "result": None}, status_code=status)


# -- JSON input ------------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity); send a finite "
                     f"number, or null")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects deeper than ``limit`` (iterative: any depth)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw: bytes | str, what: str = "request body") -> Any:
    """Parse JSON input strictly: valid UTF-8 JSON, finite numbers, at most
    :data:`MAX_JSON_DEPTH` levels deep. Anything else is an :class:`ApiError` 400 naming
    ``what`` and the fix, never an exception that surfaces later as a 409 or a 500."""
    too_deep = ApiError(400, CODE_BAD_INPUT, f"{what} nests arrays/objects more than {MAX_JSON_DEPTH} "
                                             f"levels deep; flatten it")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, CODE_BAD_INPUT, f"{what} is not UTF-8 text ({exc.reason} at byte "
                                            f"{exc.start}); send JSON encoded as UTF-8") from None
    except ValueError as exc:  # JSONDecodeError, and NaN/Infinity from _reject_constant
        raise ApiError(400, CODE_BAD_INPUT, f"{what} is not valid JSON: {exc}") from None
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


async def read_json(request: Request, *, what: str = "request body", empty: Any = None) -> Any:
    """The request's JSON body (any JSON value), or ``empty`` when the body is empty.

    Every control-API route reads JSON through here (or :func:`json_body`), so NaN, deep
    nesting and bad UTF-8 get the same clear 400 everywhere."""
    raw = await request.body()
    if not raw.strip():
        return empty
    return parse_json(raw, what)


async def json_body(request: Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object body; a clear 400 when it is not one."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, CODE_BAD_INPUT, "request body is empty; send a JSON object")
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, CODE_BAD_INPUT, "request body must be a JSON object")
    return data


# -- routes ----------------------------------------------------------------------------------

def store_failure(exc: BaseException) -> sqlite3.Error | None:
    """The SQLite error behind ``exc`` (itself or what it was raised from), if any."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, sqlite3.Error):
            return current
        current, seen = current.__cause__, seen + 1
    return None


def storage_error(exc: sqlite3.Error, path: str) -> ApiError:
    """What a failed write of the state store means to the person calling the API."""
    text = str(exc)
    if "full" in text.lower():
        return ApiError(507, CODE_DISK_FULL,
                        f"{path}: the state store could not be written ({text}); nothing was "
                        f"changed. Free space on the disk holding the state folder (--persist-to) "
                        f"and retry")
    return ApiError(500, CODE_INTERNAL, f"{path}: the state store failed ({type(exc).__name__}: "
                                        f"{text}); nothing was changed. See the `edgelet dev` log")


def api_route(fn: Any) -> Any:
    """Wrap an endpoint so every outcome is an envelope: ApiError as itself, LookupError as
    404, ValueError/TypeError as 400, a failing state store as 507/500, anything else as a
    500 that names the exception (its traceback goes to the log)."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return fail(exc.status, exc.code, exc.message)
        except LookupError as exc:
            return fail(404, 10404, str(exc.args[0]) if exc.args else str(exc))
        except RecursionError:
            return fail(400, CODE_BAD_INPUT, f"{request.url.path}: the input nests too deeply; "
                                             f"flatten it")
        except (ValueError, TypeError) as exc:
            if (cause := store_failure(exc)) is not None:
                return _store_failed(request, cause)
            return fail(400, 10400, str(exc))
        except Exception as exc:
            if (cause := store_failure(exc)) is not None:
                return _store_failed(request, cause)
            from edgelet.supervisor import IsolateError
            if isinstance(exc, IsolateError):  # the Worker's own code: it does not load, or died
                return fail(exc.status, CODE_WORKER_FAILED, f"{request.method} {request.url.path}: {exc}; "
                                                            f"fix the Worker (edgelet dev reloads it on save) "
                                                            f"and try again")
            log.exception("control API %s %s failed", request.method, request.url.path)
            return fail(500, CODE_INTERNAL, f"{request.method} {request.url.path} failed inside "
                                            f"edgelet ({type(exc).__name__}: {exc}); the traceback "
                                            f"is in the `edgelet dev` log")

    return wrapper


def _store_failed(request: Request, exc: sqlite3.Error) -> Response:
    err = storage_error(exc, f"{request.method} {request.url.path}")
    log.error("%s", err.message)
    return fail(err.status, err.code, err.message)
