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

from edgelet.api import ApiError, api_route, ok
from edgelet.openapi import OBJECT, OBJECT_LIST, STRING, Op, route

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
    ]
