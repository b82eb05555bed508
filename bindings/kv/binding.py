"""The KV API a Worker sees (``env.NS.get/put/delete/list/getWithMetadata``), transport-free.

Why a base class with an abstract ``_call``: the Worker's binding (over the isolate channel)
and the host-side test handle (straight onto storage) must accept the same arguments and
return the same shapes, so both subclass this and differ only in how a call travels.
Everything here is cheap argument shaping; the rules themselves live in ``limits`` and are
enforced by storage on the host. The checks that need no clock (key, ranges, Unicode) also run
here, before the call: a Worker's call crosses the isolate channel as msgpack, which cannot
carry a lone surrogate or an int past 64 bits, so without them such input failed with
msgpack's own words (``Integer value out of range``) instead of the rule it breaks.

Wire calls (data only): ``get [key, with_metadata]``, ``get_many [keys, with_metadata]``,
``put [key, value_bytes, expiration, expiration_ttl, metadata_json]``, ``delete [key]``,
``list [prefix, limit, cursor]``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from edgelet.bindings.kv import limits
from edgelet.runtime.jstypes import JsObject

_CHUNK = 64 * 1024


class AttrDict(JsObject):
    """A dict whose items are also attributes, for results that are objects in Cloudflare
    (:class:`edgelet.runtime.jstypes.JsObject`): items win over dict methods of the same
    name, so ``result.keys`` is the list of keys of a ``list()`` result, as in JavaScript."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"result has no field {name!r}; fields: {', '.join(map(str, self))}")

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class KVStream:
    """The value of ``get(key, type="stream")``: an async iterable of ``bytes`` chunks.

    Why not a real stream: the value is already in memory once it crossed the channel.
    ``Response(stream)`` and ``put(key, stream)`` accept it as a body (``to_bytes``).
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.locked = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        view = memoryview(self._data)
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start:start + _CHUNK])

    def to_bytes(self) -> bytes:
        return self._data

    async def bytes(self) -> bytes:
        return self._data

    async def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")

    def getReader(self) -> _Reader:  # noqa: N802 - the Streams API name
        return _Reader(self._data)

    get_reader = getReader

    def __repr__(self) -> str:
        return f"<KVStream {len(self._data)} bytes>"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read(self) -> AttrDict:
        if self._pos >= len(self._data):
            return AttrDict(done=True, value=None)
        chunk = self._data[self._pos:self._pos + _CHUNK]
        self._pos += len(chunk)
        return AttrDict(done=False, value=chunk)

    def releaseLock(self) -> None:  # noqa: N802
        pass


def _options(where: str, positional: Any, kwargs: dict[str, Any],
             names: dict[str, str], *, type_positional: bool = False) -> dict[str, Any]:
    """Merge options given as a dict (or a bare type string) and as keyword arguments.

    ``names`` maps every accepted spelling (Cloudflare's and snake_case) to one canonical
    name; anything else is a TypeError listing what is accepted, so a typo never goes unseen.
    """
    merged: dict[str, Any] = {}
    sources: list[Mapping[str, Any]] = []
    if positional is not None:
        if type_positional and isinstance(positional, str):
            sources.append({"type": positional})
        elif isinstance(positional, Mapping):
            sources.append(positional)
        else:
            raise TypeError(f"{where}: options must be a dict"
                            f"{' or a type string' if type_positional else ''}, got "
                            f"{type(positional).__name__}")
    sources.append(kwargs)
    for source in sources:
        for name, value in source.items():
            canonical = names.get(name)
            if canonical is None:
                accepted = ", ".join(sorted(set(names)))
                raise TypeError(f"{where}: unknown option {name!r}; accepted: {accepted}")
            if value is not None:
                merged[canonical] = value
    return merged


_GET_OPTIONS = {"type": "type", "cacheTtl": "cacheTtl", "cache_ttl": "cacheTtl"}
_PUT_OPTIONS = {"expiration": "expiration", "expirationTtl": "expirationTtl",
                "expiration_ttl": "expirationTtl", "metadata": "metadata"}
_LIST_OPTIONS = {"prefix": "prefix", "limit": "limit", "cursor": "cursor"}


def _decode(raw: bytes | None, kind: str, key: str, where: str) -> Any:
    """A stored value as the caller asked for it (None stays None)."""
    if raw is None:
        return None
    if kind == "text":
        return raw.decode("utf-8", errors="replace")
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{where}: value of key {limits.show_key(key)} is not valid JSON "
                             f"({exc}); read it with type='text' or store JSON") from None
    if kind == "bytes":
        return bytes(raw)
    if kind == "arrayBuffer":
        # Cloudflare's Python Workers hand an ArrayBuffer over as a memoryview
        return memoryview(bytes(raw))
    return KVStream(bytes(raw))


async def value_bytes(value: Any, key: str, where: str) -> bytes:
    """What ``put`` stores: a str as UTF-8, bytes as is, a stream read to the end."""
    if isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: value for key {limits.show_key(key)} is not valid "
                             f"Unicode (a lone surrogate); encode it yourself and pass bytes") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif callable(getattr(value, "to_bytes", None)) and not isinstance(value, int):
        data = bytes(value.to_bytes())
    elif hasattr(value, "__aiter__"):
        data = await _collect(_aiter_chunks(value), key, where)
    elif callable(getattr(value, "read", None)):
        data = value.read()
        if hasattr(data, "__await__"):
            data = await data
        data = _chunk_bytes(data, key, where)
    elif hasattr(value, "__next__"):
        data = await _collect(_iter_chunks(value), key, where)
    else:
        hint = " (to store JSON, pass json.dumps(value))" if isinstance(value, (dict, list, int, float)) \
            and not isinstance(value, bool) else ""
        raise TypeError(f"{where}: value for key {limits.show_key(key)} is a "
                        f"{type(value).__name__}; pass str, bytes or a stream{hint}")
    limits.check_value_size(len(data), key, where)
    return data


async def _aiter_chunks(value: Any) -> AsyncIterator[Any]:
    async for chunk in value:
        yield chunk


async def _iter_chunks(value: Any) -> AsyncIterator[Any]:
    for chunk in value:
        yield chunk


def _chunk_bytes(chunk: Any, key: str, where: str) -> bytes:
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    raise TypeError(f"{where}: a stream for key {limits.show_key(key)} yielded a "
                    f"{type(chunk).__name__}; streams must yield bytes or str")


async def _collect(chunks: AsyncIterator[Any], key: str, where: str) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        data = _chunk_bytes(chunk, key, where)
        size += len(data)
        if size > limits.MAX_VALUE_BYTES:  # stop reading: the stream may be endless
            limits.check_value_size(size, key, where)
        parts.append(data)
    return b"".join(parts)


def _metadata_json(metadata: Any, key: str, where: str) -> str | None:
    if metadata is None:
        return None
    try:
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: metadata for key {limits.show_key(key)} is not "
                        f"JSON-serializable ({exc}); use dicts, lists, str, numbers, bools "
                        f"and None") from None
    limits.check_metadata(text, key, where)
    return text


def _parse_metadata(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class KVNamespaceAPI:
    """``env.<binding>`` for a KV namespace; subclasses say how ``_call`` reaches storage."""

    def __init__(self, label: str) -> None:
        #: how messages name this binding, e.g. ``env.NOTES``
        self._label = label

    async def _call(self, method: str, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- reads -----------------------------------------------------------------------------
    async def get(self, key: Any, options: Any = None, /, **kwargs: Any) -> Any:
        """A value (None when absent), or a dict of key -> value when ``key`` is a list."""
        return await self._get(key, options, kwargs, with_metadata=False)

    async def getWithMetadata(self, key: Any, options: Any = None, /,  # noqa: N802
                              **kwargs: Any) -> Any:
        """``{value, metadata, cacheStatus}``; a list of keys gives a dict of those."""
        return await self._get(key, options, kwargs, with_metadata=True)

    get_with_metadata = getWithMetadata

    async def _get(self, key: Any, options: Any, kwargs: dict[str, Any], *,
                   with_metadata: bool) -> Any:
        method = "getWithMetadata" if with_metadata else "get"
        where = f"{self._label}.{method}()"
        opts = _options(where, options, kwargs, _GET_OPTIONS, type_positional=True)
        limits.check_cache_ttl(opts.get("cacheTtl"), where)
        if isinstance(key, (list, tuple)):
            keys = list(key)
            kind = limits.check_type(opts.get("type"), where, keys, bulk=True)
            limits.check_bulk(keys, where)
            for k in keys:
                limits.check_key(k, where)
            answers = await self._call("get_many", keys, with_metadata)
            out: dict[str, Any] = {}
            for k, answer in zip(keys, answers, strict=False):
                if answer is None:
                    out[k] = None
                elif with_metadata:
                    out[k] = AttrDict(value=_decode(answer[0], kind, k, where),
                                      metadata=_parse_metadata(answer[1]))
                else:
                    out[k] = _decode(answer, kind, k, where)
            return out
        kind = limits.check_type(opts.get("type"), where, key if isinstance(key, str) else None)
        limits.check_key(key, where)
        answer = await self._call("get", key, with_metadata)
        if not with_metadata:
            return _decode(answer, kind, key, where)
        if answer is None:
            return AttrDict(value=None, metadata=None, cacheStatus=None)
        return AttrDict(value=_decode(answer[0], kind, key, where),
                        metadata=_parse_metadata(answer[1]), cacheStatus=None)

    async def list(self, options: Any = None, /, **kwargs: Any) -> AttrDict:
        """One page of keys in UTF-8 byte order: ``{keys, list_complete, cursor, cacheStatus}``."""
        where = f"{self._label}.list()"
        opts = _options(where, options, kwargs, _LIST_OPTIONS)
        limits.check_prefix(opts.get("prefix"), where)
        limit = limits.check_limit(opts.get("limit"), where) if "limit" in opts else None
        limits.decode_cursor(opts.get("cursor"), where)
        rows, complete, cursor = await self._call("list", opts.get("prefix"), limit, opts.get("cursor"))
        keys = [limits.key_entry(*row, factory=AttrDict) for row in rows]
        return AttrDict(keys=keys, list_complete=complete, cursor=cursor, cacheStatus=None)

    # -- writes ----------------------------------------------------------------------------
    async def put(self, key: Any, value: Any, options: Any = None, /, **kwargs: Any) -> None:
        """Store ``value`` (str, bytes or a stream) under ``key``; returns once durable."""
        where = f"{self._label}.put()"
        opts = _options(where, options, kwargs, _PUT_OPTIONS)
        limits.check_key(key, where)
        data = await value_bytes(value, key, where)
        metadata = _metadata_json(opts.get("metadata"), key, where)
        expiration, ttl = opts.get("expiration"), opts.get("expirationTtl")
        if ttl is not None:  # it wins over expiration, as in Cloudflare
            ttl, expiration = limits.check_ttl(ttl, key, where), None
        elif expiration is not None:
            limits.check_expiration_max(expiration, key, where)
        await self._call("put", key, data, expiration, ttl, metadata)

    async def delete(self, key: Any) -> None:
        """Remove ``key``; deleting an absent key is not an error."""
        limits.check_key(key, f"{self._label}.delete()")
        await self._call("delete", key)

    def __repr__(self) -> str:
        return f"<KV namespace {self._label}>"
