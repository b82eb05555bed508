"""R2's control API, shaped after Cloudflare's REST API for R2 (``/r2/buckets/...``).

``{bucket}`` is a bucket name or a binding name. Object bodies go in as raw request bodies
and come out as raw response bodies, streamed chunk by chunk (never whole in memory); every
other answer is the JSON envelope of ``edgelet.api``.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from edgelet.api import ApiError, api_route, ok
from edgelet.bindings.r2 import errors
from edgelet.bindings.r2.storage import CHUNK, BlobReader
from edgelet.bindings.r2.values import from_ms
from edgelet.openapi import OBJECT, OBJECT_LIST, STRING, Op, route

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.r2.plugin import Plugin

#: Cloudflare's code for a missing object
NO_SUCH_KEY = 10007


def object_json(meta: dict[str, Any]) -> dict[str, Any]:
    """An object's metadata as JSON: the binding's names, ``uploaded`` in ISO 8601."""
    out = dict(meta)
    out["httpEtag"] = f'"{meta["etag"]}"'
    out["uploaded"] = from_ms(meta["uploaded"]).isoformat().replace("+00:00", "Z")
    http = dict(meta.get("httpMetadata") or {})
    if "cacheExpiry" in http:
        http["cacheExpiry"] = from_ms(http["cacheExpiry"]).isoformat().replace("+00:00", "Z")
    out["httpMetadata"] = http
    return out


async def _chunks(reader: BlobReader) -> AsyncIterator[bytes]:
    try:
        while not reader.done:
            data = reader.read(CHUNK)
            if data:
                yield data
    finally:
        reader.close()


def routes(plugin: Plugin) -> list[BaseRoute]:
    def bucket_of(request: Request) -> str:
        bucket = plugin.resolve(request.path_params["bucket"])
        if plugin.storage is None or plugin.service is None:
            raise LookupError("the R2 plug-in is not started; add r2_buckets to the config")
        return bucket

    async def list_buckets(request: Request) -> Response:
        return ok(plugin.buckets())

    async def list_objects(request: Request) -> Response:
        bucket = bucket_of(request)
        q = request.query_params
        limit = q.get("limit") or q.get("per_page")
        if limit is not None:
            try:
                limit_n: int | None = int(limit)
            except ValueError:
                raise ApiError(400, 10022, f"limit {limit!r} is not a number; give 1 to 1000") from None
        else:
            limit_n = None
        opts = {"prefix": q.get("prefix") or None, "delimiter": q.get("delimiter") or None,
                "cursor": q.get("cursor") or None, "startAfter": q.get("start_after") or None, "limit": limit_n,
                "include": ["httpMetadata", "customMetadata"]}
        assert plugin.storage is not None
        page = plugin.storage.list(bucket, opts, f"R2 bucket {bucket!r}")
        return ok([object_json(m) for m in page["objects"]],
                  result_info={"count": len(page["objects"]), "cursor": page["cursor"] or "",
                               "is_truncated": page["truncated"], "delimited": page["delimitedPrefixes"]})

    async def an_object(request: Request) -> Response:
        bucket = bucket_of(request)
        key = request.path_params["key"]
        where = f"R2 bucket {bucket!r}"
        storage, service = plugin.storage, plugin.service
        assert storage is not None and service is not None
        if request.method == "GET":
            found = storage.open_read(bucket, key, None, None, where)
            if found is None:
                raise ApiError(404, NO_SUCH_KEY, f"The specified key does not exist: {errors.show_key(key)} in "
                                                 f"R2 bucket {bucket!r}")
            meta, reader = found
            assert reader is not None
            http = meta["httpMetadata"]
            headers = {"etag": f'"{meta["etag"]}"', "content-length": str(meta["size"]),
                       "last-modified": email.utils.format_datetime(from_ms(meta["uploaded"]), usegmt=True)}
            for field, header in (("contentLanguage", "content-language"),
                                  ("contentDisposition", "content-disposition"),
                                  ("contentEncoding", "content-encoding"), ("cacheControl", "cache-control")):
                if field in http:
                    headers[header] = http[field]
            return StreamingResponse(_chunks(reader), headers=headers,
                                     media_type=http.get("contentType", "application/octet-stream"))
        if request.method == "PUT":
            opts: dict[str, Any] = {}
            content_type = request.headers.get("content-type")
            if content_type:
                opts["httpMetadata"] = {"contentType": content_type}
            label = f"R2 bucket {bucket!r}"
            handle = await service.call(bucket, label, "put_open", [key, opts])
            pending = bytearray()
            try:
                async for chunk in request.stream():
                    pending += chunk
                    if len(pending) >= CHUNK:
                        await service.call(bucket, label, "write", [handle, bytes(pending)])
                        pending.clear()
                if pending:
                    await service.call(bucket, label, "write", [handle, bytes(pending)])
            except BaseException:
                await service.call(bucket, label, "write_abort", [handle])
                raise
            meta = await service.call(bucket, label, "put_close", [handle])
            return ok(object_json(meta))
        storage.delete(bucket, [key], where)
        return ok({"key": key, "bucket": bucket})

    def bucket_names() -> list[str]:
        return sorted({*plugin.bindings.values(), *(b for _, b in plugin.bindings)})

    names = {"bucket": bucket_names}
    return [
        route("/r2/buckets", api_route(list_buckets), GET=Op(
            "R2 buckets (configured or stored) with the bindings that reach them and their usage",
            result=OBJECT_LIST, errors=())),
        route("/r2/buckets/{bucket}/objects", api_route(list_objects), names=names, GET=Op(
            "One page of objects in key byte order; result_info carries cursor, is_truncated, delimited",
            query={"prefix": STRING, "delimiter": STRING, "cursor": STRING, "start_after": STRING,
                   "limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
            result=OBJECT_LIST)),
        route("/r2/buckets/{bucket}/objects/{key:path}", api_route(an_object), names=names,
              GET=Op("The object's body, streamed, with its HTTP metadata as headers",
                     media="application/octet-stream"),
              PUT=Op("Write an object from the raw request body (streamed); Content-Type is kept",
                     body={"type": "string", "format": "binary"}, body_media="application/octet-stream",
                     result=OBJECT),
              DELETE=Op("Delete an object (deleting a missing key succeeds)", result=OBJECT)),
    ]
