"""Python stand-ins for the JavaScript values Python Workers meet through Pyodide.

On Cloudflare a Worker sees ``Uint8Array``, ``ArrayBuffer`` and ``ReadableStream`` as JsProxy
objects (``.to_py()``, ``.to_bytes()``, ``.buffer``, ``getReader()``). Here they are plain
Python objects with those conveniences: ``Uint8Array`` and ``ArrayBuffer`` are ``bytes``, so
anything that takes bytes takes them, and code written for Pyodide keeps working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


class JsObject(dict):
    """A JS object converted to Python: a dict that also allows attribute access.

    What ``workers.python_from_rpc`` returns on Cloudflare (its ``JsDict``), and what D1 and
    Durable Object SQL rows are, so ``row.value`` and ``row["value"]`` both work. Keys win
    over dict methods of the same name (a column ``count`` reads as the column), as in JS.
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no key {name!r}; it has: {', '.join(map(str, self))}")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_py(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(self)

    def object_keys(self) -> list[Any]:
        return list(self.keys())

    def object_values(self) -> list[Any]:
        return list(self.values())

    def object_entries(self) -> list[list[Any]]:
        return [[k, v] for k, v in self.items()]

    def as_object_map(self) -> JsObject:
        return self


class _JsBytes(bytes):
    """What Pyodide's proxies of JS byte containers convert to: the conversions both
    ``ArrayBuffer`` and ``Uint8Array`` share."""

    def to_bytes(self) -> bytes:
        return bytes(self)

    def to_py(self, *args: Any, **kwargs: Any) -> memoryview:
        return memoryview(self)

    def to_memoryview(self) -> memoryview:
        return memoryview(self)


class ArrayBuffer(_JsBytes):
    """A JS ``ArrayBuffer``: bytes with ``byteLength``, ``to_bytes()`` and ``slice``."""

    @property
    def byteLength(self) -> int:  # noqa: N802 - JavaScript's name
        return len(self)

    def slice(self, start: int = 0, end: int | None = None) -> ArrayBuffer:
        return ArrayBuffer(self[start:end])

    @classmethod
    def new(cls, length: int = 0) -> ArrayBuffer:
        return cls(bytes(length))


class Uint8Array(_JsBytes):
    """A JS ``Uint8Array`` (what ``pyodide.ffi.to_js(bytes)`` gives): bytes with ``.buffer``,
    ``length``, ``byteLength``, ``to_bytes()``, ``to_py()`` and ``subarray``."""

    @property
    def buffer(self) -> ArrayBuffer:
        return ArrayBuffer(self)

    @property
    def length(self) -> int:
        return len(self)

    byteLength = length  # noqa: N815

    def subarray(self, start: int = 0, end: int | None = None) -> Uint8Array:
        return Uint8Array(self[start:end])

    def slice(self, start: int = 0, end: int | None = None) -> Uint8Array:
        return Uint8Array(self[start:end])

    @classmethod
    def new(cls, source: Any = 0, *args: Any) -> Uint8Array:
        """``Uint8Array.new(length)``, ``.new(buffer)`` or ``.new([1, 2, 3])``."""
        return cls(bytes(source))  # bytes(n) is n zeros, bytes(iterable) its values


class ReadResult(JsObject):
    """``await reader.read()``: ``{done, value}``."""

    __slots__ = ()


class ReadableStreamReader:
    """``stream.getReader()``: ``await read()`` gives ``{done, value}``, value a Uint8Array."""

    def __init__(self, stream: ReadableStream) -> None:
        self._stream = stream
        self._iter = stream.__aiter__()
        self.closed = False

    async def read(self) -> ReadResult:
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self.closed = True
            return ReadResult(done=True, value=None)
        return ReadResult(done=False, value=chunk)

    def releaseLock(self) -> None:  # noqa: N802 - JavaScript's name
        pass

    release_lock = releaseLock

    async def cancel(self, reason: Any = None) -> None:
        self.closed = True
        await self._stream.cancel(reason)


class ReadableStream:
    """A body as a stream: ``async for chunk in stream`` (chunks are Uint8Array) or
    ``stream.getReader()``. Built from bytes already here or from an async iterator."""

    def __init__(self, source: bytes | AsyncIterator[Any], chunk_size: int = 65536) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self.locked = False
        self._cancelled = False

    async def __aiter__(self) -> AsyncIterator[Uint8Array]:
        if self.locked:
            raise TypeError("ReadableStream is locked: its body was already read")
        self.locked = True
        source = self._source
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            for start in range(0, len(data), self._chunk_size):
                if self._cancelled:
                    return
                yield Uint8Array(data[start:start + self._chunk_size])
            return
        async for chunk in source:
            if self._cancelled:
                return
            yield Uint8Array(chunk.encode() if isinstance(chunk, str) else bytes(chunk))

    def getReader(self) -> ReadableStreamReader:  # noqa: N802 - JavaScript's name
        return ReadableStreamReader(self)

    get_reader = getReader

    async def cancel(self, reason: Any = None) -> None:
        self._cancelled = True

    @property
    def js_object(self) -> ReadableStream:
        return self
