"""KV's control API, shaped after Cloudflare's REST API for Workers KV.

``{namespace}`` is a namespace id or a binding name. Values go in as raw request bodies and
come out in the envelope's ``result`` as text (``result_info.encoding`` says ``base64`` when
the value is not UTF-8).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edgelet.api import ApiError, api_route, ok
from edgelet.bindings.kv.limits import key_entry

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.kv.plugin import Plugin

#: Cloudflare's code for a missing key
KEY_NOT_FOUND = 10009


def routes(plugin: Plugin) -> list[BaseRoute]:
    def storage() -> Any:
        assert plugin.storage is not None
        return plugin.storage

    async def list_namespaces(request: Request) -> Response:
        return ok(plugin.namespaces())

    async def list_keys(request: Request) -> Response:
        ns = plugin.resolve(request.path_params["namespace"])
        q = request.query_params
        rows, complete, cursor = storage().list(
            ns, q.get("prefix") or None, q.get("limit") or None, q.get("cursor") or None,
            f"KV namespace {ns!r} keys")
        result = [key_entry(*row) for row in rows]
        return ok(result, result_info={"count": len(result), "cursor": cursor or ""})

    async def value(request: Request) -> Response:
        ns = plugin.resolve(request.path_params["namespace"])
        key = request.path_params["key"]
        where = f"KV namespace {ns!r}"
        if request.method == "GET":
            entry = storage().get(ns, key, where)
            if entry is None:
                raise ApiError(404, KEY_NOT_FOUND, f"key {key!r} not found in KV namespace {ns!r}")
            data, expiration, metadata = entry
            try:
                text, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = base64.b64encode(data).decode("ascii"), "base64"
            return ok(text, result_info={
                "encoding": encoding, "expiration": expiration,
                "metadata": None if metadata is None else json.loads(metadata)})
        if request.method == "PUT":
            q = request.query_params
            metadata = q.get("metadata")
            if metadata is not None:
                try:
                    metadata = json.dumps(json.loads(metadata), separators=(",", ":"),
                                          ensure_ascii=False)
                except ValueError as exc:
                    raise ApiError(400, 10400, f"metadata for key {key!r} is not valid JSON "
                                               f"({exc}); pass a JSON object") from None
            body = await request.body()
            expires = await storage().group.run(lambda: storage().put(
                ns, key, body, where, expiration=q.get("expiration") or None,
                expiration_ttl=q.get("expiration_ttl") or None, metadata=metadata))
            return ok({"key": key, "namespace": ns, "expiration": expires})
        await storage().group.run(lambda: storage().delete(ns, key, where))
        return ok({"key": key, "namespace": ns})

    async def metadata(request: Request) -> Response:
        ns = plugin.resolve(request.path_params["namespace"])
        key = request.path_params["key"]
        entry = storage().get(ns, key, f"KV namespace {ns!r}")
        if entry is None:
            raise ApiError(404, KEY_NOT_FOUND, f"key {key!r} not found in KV namespace {ns!r}")
        return ok(None if entry[2] is None else json.loads(entry[2]))

    return [
        Route("/kv/namespaces", api_route(list_namespaces), methods=["GET"]),
        Route("/kv/{namespace}/keys", api_route(list_keys), methods=["GET"]),
        Route("/kv/{namespace}/values/{key:path}", api_route(value),
              methods=["GET", "PUT", "DELETE"]),
        Route("/kv/{namespace}/metadata/{key:path}", api_route(metadata), methods=["GET"]),
    ]
