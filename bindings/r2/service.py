"""The wire calls of R2 (what ``env.BUCKET`` and the test handle send), on top of storage.

Bodies cross in chunks of ``storage.CHUNK``: a body that fits in one chunk travels inside
``get``/``put`` itself (one round trip); a larger one is read or written through a handle,
one chunk per call, so neither side ever holds more than a chunk of it. fsync and the
joining of multipart parts run in a thread so they never stall other requests.

Handles a Worker opened but never finished (it crashed, or stopped reading) are closed
after ``IDLE_S`` without use, and their temp files removed.

Wire calls (args are msgpack data; option dicts use Cloudflare's camelCase names):
``head [key]``, ``get [key, onlyIf, range]`` -> None | [meta, None] | [meta, [chunk, handle]],
``read [handle]`` -> bytes, ``release [handle]``,
``put [key, bytes, opts]`` -> meta | None, ``put_open [key, opts]`` -> handle,
``write [handle, bytes]``, ``put_close [handle]`` -> meta | None, ``write_abort [handle]``,
``delete [keys]``, ``list [opts]``, ``mpu_create [key, opts]`` -> uploadId,
``mpu_part [key, uploadId, n, bytes]`` -> part, ``mpu_part_open [key, uploadId, n]`` -> handle,
``mpu_part_close [handle]`` -> part, ``mpu_complete [key, uploadId, parts]`` -> meta,
``mpu_abort [key, uploadId]``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from edgelet.bindings.r2 import errors
from edgelet.bindings.r2.storage import (
    CHUNK,
    MAX_OBJECT_BYTES,
    BlobReader,
    BlobWriter,
    R2Storage,
    check_custom_metadata,
    check_key,
    check_storage_class,
    copy_into,
)

IDLE_S = 300.0


@dataclass
class _Open:
    """A read or write in progress, named by a handle id."""

    bucket: str
    key: str
    where: str
    reader: BlobReader | None = None
    writer: BlobWriter | None = None
    opts: dict[str, Any] = field(default_factory=dict)
    #: for a part: (uploadId, part number)
    part: tuple[str, int] | None = None
    used: float = field(default_factory=time.monotonic)


class R2Service:
    """Answers the wire calls for every bucket of one storage."""

    def __init__(self, storage: R2Storage) -> None:
        self.storage = storage
        self._open: dict[int, _Open] = {}
        self._ids = itertools.count(1)

    # -- handles --------------------------------------------------------------------------
    def _add(self, entry: _Open) -> int:
        self._expire()
        handle = next(self._ids)
        self._open[handle] = entry
        return handle

    def _entry(self, handle: Any, where: str) -> _Open:
        entry = self._open.get(handle) if isinstance(handle, int) else None
        if entry is None:
            raise LookupError(f"{where}: the body stream was closed (finished, cancelled, or idle for more "
                              f"than {IDLE_S:.0f} s); read or write it again from the start")
        entry.used = time.monotonic()
        return entry

    def _expire(self) -> None:
        cutoff = time.monotonic() - IDLE_S
        for handle, entry in list(self._open.items()):
            if entry.used < cutoff:
                self._drop(handle)

    def _drop(self, handle: int) -> None:
        entry = self._open.pop(handle, None)
        if entry is None:
            return
        if entry.reader is not None:
            entry.reader.close()
        if entry.writer is not None:
            entry.writer.abort()

    def close(self) -> None:
        for handle in list(self._open):
            self._drop(handle)

    # -- the calls ------------------------------------------------------------------------
    async def call(self, bucket: str, label: str, method: str, args: list[Any]) -> Any:
        fn = getattr(self, f"_{method}", None)
        if fn is None or method.startswith("_"):
            raise LookupError(f"R2 bucket {label} has no method {method!r}")
        return await fn(bucket, label, *args)

    async def _head(self, bucket: str, label: str, key: Any) -> Any:
        return self.storage.head(bucket, key, f"{label}.head()")

    async def _get(self, bucket: str, label: str, key: Any, only_if: Any = None, range_spec: Any = None) -> Any:
        where = f"{label}.get()"
        found = self.storage.open_read(bucket, key, only_if, range_spec, where)
        if found is None:
            return None
        meta, reader = found
        if reader is None:
            return [meta, None]
        first = reader.read()
        if reader.done:
            return [meta, [first, None]]
        return [meta, [first, self._add(_Open(bucket, key, where, reader=reader))]]

    async def _read(self, bucket: str, label: str, handle: Any) -> bytes:
        entry = self._entry(handle, f"{label}.get() body")
        assert entry.reader is not None
        data = entry.reader.read()
        if entry.reader.done:
            self._open.pop(handle, None)
        return data

    async def _release(self, bucket: str, label: str, handle: Any) -> None:
        self._drop(handle)

    def _writer(self, bucket: str, key: str, opts: dict[str, Any], where: str) -> BlobWriter:
        check_key(key, where)
        check_custom_metadata(opts.get("customMetadata") or {}, key, where)
        check_storage_class(opts.get("storageClass"), where)
        hashes = list((opts.get("checksums") or {}).keys())
        return self.storage.begin_write(bucket, hashes, MAX_OBJECT_BYTES, f"the body of {errors.show_key(key)}",
                                        where)

    async def _finish_put(self, bucket: str, key: str, writer: BlobWriter, opts: dict[str, Any],
                          where: str) -> Any:
        if not writer.in_memory:
            try:
                await asyncio.to_thread(writer.finish)
            except BaseException:
                writer.abort()
                raise
        return self.storage.commit_put(bucket, key, writer, opts, where)

    async def _put(self, bucket: str, label: str, key: Any, data: bytes, opts: dict[str, Any] | None = None) -> Any:
        where = f"{label}.put()"
        opts = opts or {}
        writer = self._writer(bucket, key, opts, where)
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        return await self._finish_put(bucket, key, writer, opts, where)

    async def _put_open(self, bucket: str, label: str, key: Any, opts: dict[str, Any] | None = None) -> int:
        where = f"{label}.put()"
        opts = opts or {}
        return self._add(_Open(bucket, key, where, writer=self._writer(bucket, key, opts, where), opts=opts))

    async def _write(self, bucket: str, label: str, handle: Any, data: bytes) -> None:
        entry = self._entry(handle, f"{label} upload")
        assert entry.writer is not None
        try:
            entry.writer.write(data)
        except BaseException:
            self._drop(handle)
            raise

    async def _write_abort(self, bucket: str, label: str, handle: Any) -> None:
        self._drop(handle)

    async def _put_close(self, bucket: str, label: str, handle: Any) -> Any:
        entry = self._entry(handle, f"{label}.put()")
        self._open.pop(handle, None)
        assert entry.writer is not None
        return await self._finish_put(entry.bucket, entry.key, entry.writer, entry.opts, entry.where)

    async def _delete(self, bucket: str, label: str, keys: Any) -> None:
        self.storage.delete(bucket, list(keys), f"{label}.delete()")

    async def _list(self, bucket: str, label: str, opts: dict[str, Any] | None = None) -> Any:
        return self.storage.list(bucket, opts or {}, f"{label}.list()")

    # -- multipart ------------------------------------------------------------------------
    async def _mpu_create(self, bucket: str, label: str, key: Any, opts: dict[str, Any] | None = None) -> str:
        return self.storage.create_upload(bucket, key, opts or {}, f"{label}.createMultipartUpload()")

    async def _finish_part(self, bucket: str, key: str, upload_id: str, number: int, writer: BlobWriter,
                           where: str) -> Any:
        try:
            await asyncio.to_thread(writer.finish)
        except BaseException:
            writer.abort()
            raise
        return self.storage.commit_part(bucket, key, upload_id, number, writer, where)

    async def _mpu_part(self, bucket: str, label: str, key: Any, upload_id: Any, number: Any, data: bytes) -> Any:
        where = f"{label}.uploadPart()"
        writer = self.storage.begin_part(bucket, key, upload_id, number, where)
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        return await self._finish_part(bucket, key, upload_id, number, writer, where)

    async def _mpu_part_open(self, bucket: str, label: str, key: Any, upload_id: Any, number: Any) -> int:
        where = f"{label}.uploadPart()"
        writer = self.storage.begin_part(bucket, key, upload_id, number, where)
        return self._add(_Open(bucket, key, where, writer=writer, part=(upload_id, number)))

    async def _mpu_part_close(self, bucket: str, label: str, handle: Any) -> Any:
        entry = self._entry(handle, f"{label}.uploadPart()")
        self._open.pop(handle, None)
        assert entry.writer is not None and entry.part is not None
        return await self._finish_part(entry.bucket, entry.key, entry.part[0], entry.part[1], entry.writer,
                                       entry.where)

    async def _mpu_complete(self, bucket: str, label: str, key: Any, upload_id: Any, parts: Any) -> Any:
        where = f"{label}.complete()"
        if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("partNumber"), int)
                                                  for p in parts):
            raise TypeError(f"{where}: parts must be a list of {{partNumber, etag}} as uploadPart returned them")
        files, plan = self.storage.plan_complete(bucket, key, upload_id, parts, where)
        writer = self.storage.begin_write(bucket, (), MAX_OBJECT_BYTES * 2, f"the upload of {errors.show_key(key)}",
                                          where)
        try:
            await asyncio.to_thread(copy_into, writer, files)
        except BaseException:
            writer.abort()
            raise
        return self.storage.commit_complete(bucket, key, upload_id, writer, plan, where)

    async def _mpu_abort(self, bucket: str, label: str, key: Any, upload_id: Any) -> None:
        self.storage.abort_upload(bucket, key, upload_id, f"{label}.abort()")


__all__ = ["CHUNK", "R2Service"]
