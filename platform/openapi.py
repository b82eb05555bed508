"""The control API's OpenAPI 3.1 document, assembled from the routes themselves.

Why per route: each binding's ``routes`` module knows its own paths, inputs and results, so
each route carries a small :class:`Op` per HTTP method (made with :func:`route`) and the host
collects them into ``/cdn-cgi/edgelet/api/openapi.json``. A route added without a
description still appears in the document (marked undocumented), and a test fails on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

#: JSON Schema snippets the routes share
STRING = {"type": "string"}
NAME = {"type": "string", "minLength": 1, "maxLength": 512}
INTEGER = {"type": "integer"}
ANY_JSON: dict[str, Any] = {}
OBJECT = {"type": "object"}
OBJECT_LIST = {"type": "array", "items": OBJECT}

_PARAM_RE = re.compile(r"{(\w+)(?::\w+)?}")
_UNDOCUMENTED = "undocumented"


@dataclass(frozen=True)
class Op:
    """One operation (a path and a method) of the control API.

    ``body`` is the JSON Schema of a JSON request body (``body_media`` says another media
    type, e.g. ``application/octet-stream`` for a raw KV value); ``query`` names the query
    parameters with their schemas; ``result`` is the schema of the envelope's ``result``.
    """

    summary: str
    result: dict[str, Any] = field(default_factory=dict)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    body_media: str = "application/json"
    body_required: bool = False
    status: int = 200
    errors: tuple[int, ...] = (400, 404)
    description: str = ""
    #: a streaming answer that is not an envelope (``tail``)
    media: str = "application/json"


def route(path: str, endpoint: Any, *, names: dict[str, Callable[[], list[str]]] | None = None,
          **ops: Op) -> Route:
    """A starlette Route answering the methods of ``ops`` (``GET=Op(...)``), described by them.

    ``names`` gives, per path parameter, the names that exist right now (the configured
    namespaces, queues, workflows): the document lists them as the parameter's values, so a
    client, or a fuzzer, reaches past the 404 of an unknown name."""
    r = Route(path, endpoint, methods=list(ops))
    r.openapi_ops = ops  # type: ignore[attr-defined]
    r.openapi_names = names or {}  # type: ignore[attr-defined]
    return r


def envelope(result: dict[str, Any]) -> dict[str, Any]:
    """Cloudflare's response envelope around ``result``."""
    return {
        "type": "object",
        "required": ["success", "errors", "messages", "result"],
        "properties": {
            "success": {"type": "boolean"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
            "messages": {"type": "array"},
            "result": result,
            "result_info": OBJECT,
        },
    }


def mounted_routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    """Every Route under ``routes`` (into Mounts) with its full path."""
    found: list[tuple[str, Route]] = []
    for r in routes:
        if isinstance(r, Mount):
            found.extend(mounted_routes(list(r.routes), prefix + r.path))
        elif isinstance(r, Route):
            found.append((prefix + r.path, r))
    return found


def document(routes: list[BaseRoute], *, prefix: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` mounted at ``prefix``."""
    paths: dict[str, Any] = {}
    for path, r in mounted_routes(routes, prefix):
        ops: dict[str, Op] = getattr(r, "openapi_ops", {})
        methods = sorted((r.methods or {"GET"}) - {"HEAD"})
        item = paths.setdefault(_PARAM_RE.sub(r"{\1}", path), {})
        names: dict[str, Callable[[], list[str]]] = getattr(r, "openapi_names", {})
        params = [{"name": m.group(1), "in": "path", "required": True,
                   "schema": _name_schema(names.get(m.group(1)))}
                  for m in _PARAM_RE.finditer(path)]
        for method in methods:
            op = ops.get(method) or Op(summary=_UNDOCUMENTED)
            item[method.lower()] = _operation(op, method, path, params)
    return {
        "openapi": "3.1.0",
        "info": {"title": "edgelet control API", "version": version,
                 "description": "The platform's own API under /cdn-cgi/edgelet/api/ (SPEC 5). "
                                "Every answer is Cloudflare's envelope {success, errors, messages, "
                                "result}; bad input is a 4xx with a message a person can act on."},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": INTEGER, "message": STRING}}}},
    }


def _name_schema(current: Callable[[], list[str]] | None) -> dict[str, Any]:
    try:
        values = sorted(set(current())) if current is not None else []
    except Exception:  # the plug-in is not started (or has nothing): any name, as documented
        values = []
    return {**NAME, "enum": values} if values else NAME


def _operation(op: Op, method: str, path: str, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    operation_id = (method.lower() + _PARAM_RE.sub(r"\1", path).replace("/cdn-cgi/edgelet/api", "")
                    .replace("/", "_").replace(".", "_").replace("-", "_"))
    out: dict[str, Any] = {"operationId": operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    params = list(path_params)
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in op.query.items()]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {op.body_media: {"schema": op.body}}}
    if op.media != "application/json":
        out["responses"] = {str(op.status): {"description": op.summary,
                                             "content": {op.media: {"schema": STRING}}}}
        return out
    failure = {"description": "bad input or not found, in the envelope",
               "content": {"application/json": {"schema": envelope({"type": "null"})}}}
    out["responses"] = {str(op.status): {"description": "success",
                                         "content": {"application/json": {"schema": envelope(op.result)}}},
                        **{str(code): failure for code in op.errors},
                        "413": failure, "403": failure}
    return out


def undocumented(doc: dict[str, Any]) -> list[str]:
    """``METHOD path`` of every operation without a description (for tests and review)."""
    return [f"{m.upper()} {p}" for p, item in doc["paths"].items() for m, op in item.items()
            if op.get("summary") == _UNDOCUMENTED]
