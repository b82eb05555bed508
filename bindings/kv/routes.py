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
from starlette.routing import BaseRoute

from edgelet.api import ApiError, api_route, ok, parse_json
from edgelet.bindings.kv.limits import MAX_LIST_LIMIT, key_entry
from edgelet.openapi import ANY_JSON, INTEGER, OBJECT, OBJECT_LIST, STRING, Op, route

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
                metadata = json.dumps(parse_json(metadata, f"the metadata for key {key!r}"),
                                      separators=(",", ":"), ensure_ascii=False)
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

    def namespace_names() -> list[str]:
        return [*plugin.bindings.values(), *(binding for _, binding in plugin.bindings)]

    names = {"namespace": namespace_names}
    key_entry_schema = {"type": "object", "required": ["name"],
                        "properties": {"name": STRING, "expiration": INTEGER, "metadata": ANY_JSON}}
    return [
        route("/kv/namespaces", api_route(list_namespaces), GET=Op(
            "KV namespaces of every Worker, with the bindings that use them", result=OBJECT_LIST,
            errors=())),
        route("/kv/{namespace}/keys", api_route(list_keys), names=names, GET=Op(
            "One page of keys, in UTF-8 byte order; follow result_info.cursor for the next",
            query={"prefix": STRING, "cursor": STRING,
                   "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT}},
            result={"type": "array", "items": key_entry_schema})),
        route("/kv/{namespace}/values/{key:path}", api_route(value), names=names,
              GET=Op("A key's value: text, or base64 when result_info.encoding says so",
                     result=STRING),
              PUT=Op("Write a key: the raw request body is the value",
                     body={"type": "string", "format": "binary"}, body_media="application/octet-stream",
                     query={"expiration": INTEGER, "expiration_ttl": INTEGER,
                            "metadata": {"type": "string", "description": "a JSON value"}},
                     result=OBJECT),
              DELETE=Op("Delete a key (deleting a missing key succeeds)", result=OBJECT)),
        route("/kv/{namespace}/metadata/{key:path}", api_route(metadata), names=names, GET=Op(
            "A key's metadata (null when it has none)", result=ANY_JSON)),
    ]
