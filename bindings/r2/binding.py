"""The R2 API a Worker sees (``env.BUCKET.put/get/head/delete/list/createMultipartUpload``).

Why a base class with an abstract ``_call``: the Worker's binding (over the isolate channel)
and the host-side test handle (straight onto the service) must accept the same arguments and
return the same shapes, so both subclass :class:`R2BucketAPI` and differ only in how a call
travels. Bodies move in chunks (see service.py): a large body is never whole in memory here.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from edgelet.bindings.r2 import values
from edgelet.bindings.r2.storage import CHUNK, check_storage_class


class R2Dict(dict[str, Any]):
    """A dict whose items are also attributes, under Cloudflare's names and snake_case ones.

    Items win over dict methods of the same name (``result.objects``); ``obj.http_etag``
    finds ``httpEtag``."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        alias = values.camel(name)
        if alias != name and dict.__contains__(self, alias):
            return dict.__getitem__(self, alias)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}; fields: {', '.join(map(str, self))}")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


class R2Checksums(R2Dict):
    """The object's checksums: ``md5`` (and any sha* given at put) as bytes, like Cloudflare's
    ArrayBuffers; ``toJSON()`` gives them as hex."""

    __slots__ = ()

    def toJSON(self) -> dict[str, str]:  # noqa: N802 - Cloudflare's name
        return {k: bytes(v).hex() for k, v in self.items()}

    to_json = toJSON


class R2Object(R2Dict):
    """An object's metadata: ``key``, ``version``, ``size``, ``etag``, ``httpEtag``,
    ``uploaded`` (a UTC datetime), ``httpMetadata``, ``customMetadata``, ``checksums``,
    ``storageClass`` and, from ``head`` and ``get``, ``range``."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, meta: dict[str, Any]) -> R2Object:
        obj = cls()
        cls._fill(obj, meta)
        return obj

    @staticmethod
    def _fill(obj: R2Dict, meta: dict[str, Any]) -> None:
        http = R2Dict(meta.get("httpMetadata") or {})
        if "cacheExpiry" in http:
            http["cacheExpiry"] = values.from_ms(http["cacheExpiry"])
        dict.update(obj, key=meta["key"], version=meta["version"], size=meta["size"], etag=meta["etag"],
                    httpEtag=f'"{meta["etag"]}"', uploaded=values.from_ms(meta["uploaded"]), httpMetadata=http,
                    customMetadata=R2Dict(meta.get("customMetadata") or {}),
                    checksums=R2Checksums({k: bytes.fromhex(v) for k, v in (meta.get("checksums") or {}).items()}),
                    storageClass=meta.get("storageClass", "Standard"))
        if "range" in meta:
            dict.__setitem__(obj, "range", R2Dict(meta["range"]))

    @classmethod
    def read_result(cls, meta: dict[str, Any]) -> R2Object:
        """The object ``head`` returns, or ``get`` when ``onlyIf`` fails."""
        obj = cls()
        cls._fill(obj, meta)
        _whole_range(obj, meta)
        return obj

    def writeHttpMetadata(self, headers: Any) -> None:  # noqa: N802 - Cloudflare's name
        """Set content-type, content-language, content-disposition, content-encoding,
        cache-control and expires on ``headers`` (a Headers object or a dict)."""
        http = dict.get(self, "httpMetadata") or {}
        for field, header in (("contentType", "content-type"), ("contentLanguage", "content-language"),
                              ("contentDisposition", "content-disposition"),
                              ("contentEncoding", "content-encoding"), ("cacheControl", "cache-control"),
                              ("cacheExpiry", "expires")):
            value = http.get(field)
            if value is None:
                continue
            if field == "cacheExpiry":
                import email.utils
                value = email.utils.format_datetime(value, usegmt=True)
            if callable(getattr(headers, "set", None)):
                headers.set(header, value)
            else:
                headers[header] = value

    write_http_metadata = writeHttpMetadata

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict.get(self, 'key')!r} {dict.get(self, 'size')} bytes>"


def _whole_range(obj: R2Dict, meta: dict[str, Any]) -> None:
    """``range`` is on every object ``get`` and ``head`` return, as on R2 (Miniflare, which
    mirrors it, answers ``{offset: 0, length: size}`` when no range was read, also for the
    object of a failed ``onlyIf``); ``put`` and ``list`` results have none. So a Worker tells a
    partial read by ``obj.range["length"] < obj.size``, not by whether ``range`` is there."""
    if "range" not in meta:
        dict.__setitem__(obj, "range", R2Dict(offset=0, length=meta["size"]))


class _Blob:
    """What ``blob()`` returns: the bytes with ``size`` and ``type``."""

    def __init__(self, data: bytes, type_: str) -> None:
        self._data = data
        self.size = len(data)
        self.type = type_

    async def arrayBuffer(self) -> bytes:  # noqa: N802
        return self._data

    array_buffer = arrayBuffer

    async def bytes(self) -> bytes:
        return self._data

    async def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")


class R2Stream:
    """An object's body: an async iterable of ``bytes`` chunks, read from the host as it goes.

    ``Response(obj.body)`` works when the body arrived whole with ``get`` (up to 1 MiB); for
    a larger body the platform collects it when the fetch handler returns it."""

    def __init__(self, api: R2BucketAPI, first: bytes, handle: int | None, length: int, where: str) -> None:
        self._api = api
        self._first: bytes | None = first
        self._handle = handle
        self._length = length
        self._where = where
        self.used = False
        self.locked = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self.used:
            raise TypeError(f"{self._where}: the body was already read; get the object again to read it twice")
        self.used = True
        received = 0
        first, self._first = self._first or b"", None
        if first:
            received += len(first)
            yield first
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            while received < self._length:
                chunk = await self._api._call("read", handle)
                if not chunk:
                    break
                received += len(chunk)
                yield chunk
        finally:
            if received < self._length:
                await self._api._call("release", handle)
        if received < self._length:
            raise RuntimeError(f"{self._where}: the body ended after {received} of {self._length} bytes")

    async def read_all(self) -> bytes:
        """The whole body (used by the awaitable readers and by the platform for Response)."""
        parts = [chunk async for chunk in self]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def to_bytes(self) -> bytes:
        """The body, when it came whole with ``get``; a larger one must be awaited."""
        if self._handle is None and not self.used:
            self.used = True
            data, self._first = self._first or b"", None
            return data
        raise TypeError(f"{self._where}: this body is {self._length} bytes and is streamed from storage; "
                        f"read it with `await obj.bytes()` (or iterate it with `async for chunk in obj.body`)")

    @property
    def edgelet_deferred(self) -> bool:
        """True when ``Response(body)`` must await the body (it did not come whole with get)."""
        return self._handle is not None

    def getReader(self) -> _Reader:  # noqa: N802 - the Streams API name
        return _Reader(self)

    get_reader = getReader

    async def cancel(self, reason: Any = None) -> None:
        handle, self._handle = self._handle, None
        self.used = True
        if handle is not None:
            await self._api._call("release", handle)

    def __repr__(self) -> str:
        return f"<R2 body stream {self._length} bytes>"


class _Reader:
    def __init__(self, stream: R2Stream) -> None:
        self._it = stream.__aiter__()

    async def read(self) -> R2Dict:
        try:
            return R2Dict(done=False, value=await self._it.__anext__())
        except StopAsyncIteration:
            return R2Dict(done=True, value=None)

    def releaseLock(self) -> None:  # noqa: N802
        pass


class R2ObjectBody(R2Object):
    """An object with its body: ``body`` (a stream), ``bodyUsed``, and the awaitable readers."""

    __slots__ = ()

    @property
    def bodyUsed(self) -> bool:  # noqa: N802
        return bool(dict.__getitem__(self, "body").used)

    body_used = bodyUsed

    async def bytes(self) -> bytes:
        return await dict.__getitem__(self, "body").read_all()

    async def arrayBuffer(self) -> builtins.bytes:  # noqa: N802
        return await self.bytes()

    array_buffer = arrayBuffer

    async def text(self) -> str:
        return (await self.bytes()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        return values.json_loads(await self.bytes(), f"{dict.get(self, 'key')!r}.json()")

    async def blob(self) -> _Blob:
        http = dict.get(self, "httpMetadata") or {}
        return _Blob(await self.bytes(), http.get("contentType", ""))


class R2MultipartUpload:
    """An upload in progress: ``key``, ``uploadId``, ``uploadPart``, ``complete``, ``abort``."""

    def __init__(self, api: R2BucketAPI, key: str, upload_id: str) -> None:
        self._api = api
        self.key = key
        self.uploadId = upload_id  # noqa: N815 - Cloudflare's name
        self.upload_id = upload_id

    async def uploadPart(self, partNumber: int, value: Any, options: Any = None, /,  # noqa: N802, N803
                         **kwargs: Any) -> R2Dict:
        """Store part ``partNumber`` (1..10000); returns ``{partNumber, etag}`` for complete()."""
        where = f"{self._api._label}.uploadPart()"
        values.options(where, options, kwargs, ("ssecKey",))
        part = await self._api._send_body(value, where, ("mpu_part", self.key, self.uploadId, partNumber),
                                          ("mpu_part_open", self.key, self.uploadId, partNumber), "mpu_part_close")
        return R2Dict(part)

    upload_part = uploadPart

    async def complete(self, uploadedParts: Any) -> R2Object:  # noqa: N803
        """Join the parts (in part-number order) into the object; etag ``md5(md5s)-N``."""
        parts = []
        for part in uploadedParts:
            if not hasattr(part, "get"):
                raise TypeError(f"{self._api._label}.complete(): each part must be the {{partNumber, etag}} "
                                f"uploadPart returned, got {type(part).__name__}")
            number = part.get("partNumber", part.get("part_number"))
            parts.append({"partNumber": number, "etag": part.get("etag")})
        return R2Object.from_wire(await self._api._call("mpu_complete", self.key, self.uploadId, parts))

    async def abort(self) -> None:
        """Drop the upload and every part stored for it."""
        await self._api._call("mpu_abort", self.key, self.uploadId)

    def __repr__(self) -> str:
        return f"<R2MultipartUpload {self.key!r} {self.uploadId}>"


_PUT = ("httpMetadata", "customMetadata", "md5", "sha1", "sha256", "sha384", "sha512", "onlyIf", "storageClass",
        "ssecKey")
_GET = ("onlyIf", "range", "ssecKey")
_LIST = ("prefix", "delimiter", "cursor", "startAfter", "limit", "include")
_MPU = ("httpMetadata", "customMetadata", "storageClass", "ssecKey")


class R2BucketAPI:
    """``env.<binding>`` for an R2 bucket; subclasses say how ``_call`` reaches the host."""

    def __init__(self, label: str) -> None:
        #: how messages name this binding, e.g. ``env.BUCKET``
        self._label = label

    async def _call(self, method: str, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _send_body(self, value: Any, where: str, whole: tuple[Any, ...], opener: tuple[Any, ...],
                         closer: str) -> Any:
        """Send a body: in one call when it fits a chunk, else through a write handle."""
        pending = bytearray()
        handle = None
        try:
            async for chunk in values.body_chunks(value, where):
                pending += chunk
                while len(pending) >= CHUNK and (handle is not None or len(pending) > CHUNK):
                    if handle is None:
                        handle = await self._call(*opener)
                    await self._call("write", handle, bytes(pending[:CHUNK]))
                    del pending[:CHUNK]
            if handle is None:
                return await self._call(*whole[:-1], bytes(pending), *whole[-1:]) if whole[0] == "put" \
                    else await self._call(*whole, bytes(pending))
            if pending:
                await self._call("write", handle, bytes(pending))
            handle, opened = None, handle
            return await self._call(closer, opened)
        finally:
            if handle is not None:
                await self._call("write_abort", handle)

    # -- reads ----------------------------------------------------------------------------
    async def head(self, key: Any) -> R2Object | None:
        """The object's metadata without its body, or None."""
        meta = await self._call("head", key)
        return None if meta is None else R2Object.read_result(meta)

    async def get(self, key: Any, options: Any = None, /, **kwargs: Any) -> R2Object | None:
        """The object with its body, None when absent, or without a body when onlyIf fails."""
        where = f"{self._label}.get()"
        opts = values.options(where, options, kwargs, _GET)
        answer = await self._call("get", key, values.only_if(opts.get("onlyIf"), where),
                                  values.range_spec(opts.get("range"), where))
        if answer is None:
            return None
        meta, body = answer
        if body is None:
            return R2Object.read_result(meta)
        obj = R2ObjectBody()
        R2Object._fill(obj, meta)
        length = meta["range"]["length"] if "range" in meta else meta["size"]
        _whole_range(obj, meta)
        dict.__setitem__(obj, "body", R2Stream(self, body[0], body[1], length, where))
        return obj

    async def list(self, options: Any = None, /, **kwargs: Any) -> R2Dict:
        """``{objects, truncated, cursor, delimitedPrefixes}``, keys in byte order."""
        where = f"{self._label}.list()"
        opts = values.options(where, options, kwargs, _LIST)
        include = opts.get("include")
        if include is not None:
            if isinstance(include, str) or not all(values.camel(str(i)) in ("httpMetadata", "customMetadata")
                                                   for i in include):
                raise TypeError(f"{where}: include must be a list of 'httpMetadata' and/or 'customMetadata', "
                                f"got {include!r}")
            opts["include"] = [values.camel(str(i)) for i in include]
        for name in ("prefix", "delimiter", "cursor", "startAfter"):
            if name in opts and not isinstance(opts[name], str):
                raise TypeError(f"{where}: {name} must be a str, got {type(opts[name]).__name__}")
        page = await self._call("list", opts)
        return R2Dict(objects=[R2Object.from_wire(m) for m in page["objects"]], truncated=page["truncated"],
                      cursor=page["cursor"], delimitedPrefixes=list(page["delimitedPrefixes"]))

    # -- writes ---------------------------------------------------------------------------
    async def put(self, key: Any, value: Any, options: Any = None, /, **kwargs: Any) -> R2Object | None:
        """Store ``value`` (str, bytes, None or a stream) under ``key``; None when onlyIf fails."""
        where = f"{self._label}.put()"
        opts = values.options(where, options, kwargs, _PUT)
        wire: dict[str, Any] = {}
        if "httpMetadata" in opts:
            wire["httpMetadata"] = values.http_metadata(opts["httpMetadata"], where)
        if "customMetadata" in opts:
            wire["customMetadata"] = values.custom_metadata(opts["customMetadata"], where)
        sums = values.checksums(opts, where)
        if sums:
            wire["checksums"] = sums
        if "onlyIf" in opts:
            wire["onlyIf"] = values.only_if(opts["onlyIf"], where)
        if "storageClass" in opts:
            wire["storageClass"] = check_storage_class(opts["storageClass"], where)
        meta = await self._send_body(value, where, ("put", key, wire), ("put_open", key, wire), "put_close")
        return None if meta is None else R2Object.from_wire(meta)

    async def delete(self, keys: Any) -> None:
        """Remove one key or a list of at most 1000; absent keys are not an error."""
        if isinstance(keys, str):
            keys = [keys]
        elif not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
            raise TypeError(f"{self._label}.delete(): pass a key (str) or a list of keys, got {keys!r:.80}")
        await self._call("delete", list(keys))

    # -- multipart ------------------------------------------------------------------------
    async def createMultipartUpload(self, key: Any, options: Any = None, /,  # noqa: N802
                                    **kwargs: Any) -> R2MultipartUpload:
        where = f"{self._label}.createMultipartUpload()"
        opts = values.options(where, options, kwargs, _MPU)
        wire: dict[str, Any] = {"httpMetadata": values.http_metadata(opts.get("httpMetadata"), where),
                "customMetadata": values.custom_metadata(opts.get("customMetadata"), where)}
        if "storageClass" in opts:
            wire["storageClass"] = check_storage_class(opts["storageClass"], where)
        upload_id = await self._call("mpu_create", key, wire)
        return R2MultipartUpload(self, key, upload_id)

    create_multipart_upload = createMultipartUpload

    def resumeMultipartUpload(self, key: Any, uploadId: Any) -> R2MultipartUpload:  # noqa: N802, N803
        """The upload ``uploadId`` of ``key`` (checked when a part is uploaded, as on Cloudflare)."""
        if not isinstance(key, str) or not isinstance(uploadId, str):
            raise TypeError(f"{self._label}.resumeMultipartUpload(): key and uploadId must be str")
        return R2MultipartUpload(self, key, uploadId)

    resume_multipart_upload = resumeMultipartUpload

    get_object = get

    def __repr__(self) -> str:
        return f"<R2 bucket {self._label}>"
