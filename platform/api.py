"""The control API's shared pieces: Cloudflare's response envelope and error codes.

Every route under ``/cdn-cgi/edgelet/api/`` answers ``{success, errors, messages, result}``
so the CLI, tests and scripts handle one shape; plug-ins build their routes with these.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An error a person can act on, with Cloudflare-style numeric code and HTTP status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def ok(result: Any = None, *, status: int = 200, result_info: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status_code=status)


def fail(status: int, code: int, message: str) -> Response:
    return JSONResponse({"success": False, "errors": [{"code": code, "message": message}],
                         "messages": [], "result": None}, status_code=status)


async def json_body(request: Request, *, required: bool = False) -> dict[str, Any]:
    """The request's JSON object body; a clear 400 when it is not one."""
    raw = await request.body()
    if not raw:
        if required:
            raise ApiError(400, 10001, "request body is empty; send a JSON object")
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, 10001, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, 10001, "request body must be a JSON object")
    return data


def api_route(fn: Any) -> Any:
    """Wrap an endpoint so ApiError, LookupError and ValueError become envelopes."""
    import functools

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return fail(exc.status, exc.code, exc.message)
        except LookupError as exc:
            return fail(404, 10404, str(exc.args[0]) if exc.args else str(exc))
        except (ValueError, TypeError) as exc:
            return fail(400, 10400, str(exc))

    return wrapper
