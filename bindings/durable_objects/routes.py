"""Control API for Durable Objects, under ``/cdn-cgi/edgelet/api/durable_objects/``.

Paths follow Cloudflare's REST API (``.../durable_objects/namespaces/{id}/objects``).
``{ns}`` may be the namespace's name (``<script>_<class>``), id, class or binding name;
``{id}`` may be an object id or the name it was made from (``idFromName``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from edgelet.api import ApiError, api_route, json_body, ok
from edgelet.openapi import ANY_JSON, OBJECT, OBJECT_LIST, STRING, Op, route

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.plugin import Plugin


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, 10001, f"{name} must be an integer, got {raw!r}") from None
    if not 1 <= value <= high:
        raise ApiError(400, 10001, f"{name} must be from 1 to {high}, got {value}")
    return value


def routes(plugin: Plugin) -> list[BaseRoute]:
    async def namespaces(request: Request) -> Response:
        assert plugin.index is not None
        plugin.index.flush()
        counts = plugin.index.counts()
        result = [{**ns.describe(), "objects": counts.get(ns.name, 0)}
                  for ns in plugin.namespaces.values()]
        return ok(result)

    async def objects(request: Request) -> Response:
        assert plugin.index is not None
        ns = plugin.resolve(request.path_params["ns"])
        limit = _int(request, "limit", 1000, 10000)
        plugin.index.flush()
        rows = plugin.index.list(ns.name, limit=limit, cursor=request.query_params.get("cursor"))
        info: dict[str, Any] = {"count": len(rows),
                                "cursor": rows[-1]["id"] if len(rows) == limit else None}
        return ok(rows, result_info=info)

    async def show(request: Request) -> Response:
        assert plugin.index is not None
        ns = plugin.resolve(request.path_params["ns"])
        id_hex, name = plugin.object_id(ns, request.path_params["id"])
        plugin.index.flush()
        row = plugin.index.get(ns.name, id_hex)
        if row is None:
            shown = f"named {name!r} (id {id_hex})" if name else id_hex
            raise LookupError(f"no Durable Object {shown} in namespace {ns.name}; "
                              f"list them with GET .../namespaces/{ns.name}/objects")
        limit = _int(request, "limit", 1000, 100000)
        try:
            storage = await plugin.inspect(ns, id_hex, limit)
        except Exception as exc:  # the owner isolate failed: say so, in the envelope
            raise ApiError(502, 10502, f"could not read the storage of {id_hex} from Worker "
                                       f"{ns.script!r}: {exc}") from None
        return ok({**row, "namespace": ns.name, "class": ns.class_name, **storage})

    async def query(request: Request) -> Response:
        assert plugin.index is not None
        ns = plugin.resolve(request.path_params["ns"])
        id_hex, name = plugin.object_id(ns, request.path_params["id"])
        body = await json_body(request, required=True)
        sql, params = body.get("sql"), body.get("params") or []
        if not isinstance(sql, str) or not sql.strip():
            raise ApiError(400, 10001, 'send {"sql": "...", "params": [...]} with the SQL as a non-empty string')
        if not isinstance(params, list):
            raise ApiError(400, 10001, "params must be a list of values for the ? placeholders")
        plugin.index.flush()
        if plugin.index.get(ns.name, id_hex) is None:
            shown = f"named {name!r} (id {id_hex})" if name else id_hex
            raise LookupError(f"no Durable Object {shown} in namespace {ns.name}")
        try:
            result = await plugin.query(ns, id_hex, sql, params)
        except LookupError:
            raise
        except Exception as exc:
            raise ApiError(502, 10502, f"could not run SQL in {id_hex} from Worker {ns.script!r}: {exc}") from None
        if "error" in result:
            raise ApiError(400, 7500, f"SQL error in Durable Object {id_hex}: {result['error']}")
        return ok(result)

    limit = {"type": "integer", "minimum": 1}
    names = {"ns": lambda: list(plugin.namespaces)}
    return [
        route("/durable_objects/namespaces", api_route(namespaces), GET=Op(
            "Durable Object namespaces with their object counts", result=OBJECT_LIST, errors=())),
        route("/durable_objects/namespaces/{ns}/objects", api_route(objects), names=names, GET=Op(
            "Objects of a namespace; `ns` is its name, id, class or binding name",
            query={"limit": limit, "cursor": STRING}, result=OBJECT_LIST)),
        route("/durable_objects/namespaces/{ns}/objects/{id}", api_route(show), names=names, GET=Op(
            "One object and its storage; `id` is an object id or the name it was made from",
            query={"limit": limit}, result=OBJECT, errors=(400, 404, 502))),
        route("/durable_objects/namespaces/{ns}/objects/{id}/query", api_route(query), names=names, POST=Op(
            "Run SQL in the object's database as ctx.storage.sql.exec would; SQLite's error is a 400",
            body={"type": "object", "required": ["sql"],
                  "properties": {"sql": STRING, "params": {"type": "array", "items": ANY_JSON}}},
            body_required=True, result=OBJECT, errors=(400, 404, 502))),
    ]
