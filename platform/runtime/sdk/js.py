"""The ``js`` module of Python Workers (``from js import Response, fetch, crypto``).

On Cloudflare these are JavaScript globals reached through Pyodide; here they are Python
objects with the same names, JS-style constructors (``X.new(...)``) and the JsProxy
conveniences scripts use (``to_py()``, ``object_values()``, ``as_object_map()``).
"""

import base64 as _base64
import hashlib as _hashlib
import json as _json
import logging as _logging
import os as _os
import time as _time
import uuid as _uuid
from typing import Any

from edgelet.runtime.formdata import Blob, File, FormData
from edgelet.runtime.html_rewriter import HTMLRewriter  # noqa: F401 - js.HTMLRewriter
from edgelet.runtime.http_types import Headers, Request, Response
from edgelet.runtime.jsglobals import (  # noqa: F401 - js.<name> for scripts
    Math,
    TextDecoder,
    TextEncoder,
    clearInterval,
    clearTimeout,
    decodeURI,
    decodeURIComponent,
    encodeURI,
    encodeURIComponent,
    navigator,
    performance,
    queueMicrotask,
    setInterval,
    setTimeout,
    structuredClone,
)
from edgelet.runtime.jstypes import ArrayBuffer, JsObject, ReadableStream, Uint8Array
from edgelet.runtime.outgoing import fetch
from edgelet.runtime.urls import URL, URLSearchParams
from edgelet.runtime.websocket import WebSocketPair, WebSocketRequestResponsePair  # noqa: F401
from edgelet.runtime.websocket_outbound import OutboundWebSocket as WebSocket  # noqa: F401

_log = _logging.getLogger("worker")


class console:  # noqa: N801 - JavaScript's name
    @staticmethod
    def log(*args: Any) -> None:
        print(*args)

    info = log
    debug = log

    @staticmethod
    def warn(*args: Any) -> None:
        _log.warning(" ".join(str(a) for a in args))

    @staticmethod
    def error(*args: Any) -> None:
        _log.error(" ".join(str(a) for a in args))


class Object:
    @staticmethod
    def fromEntries(entries: Any) -> JsObject:  # noqa: N802
        if hasattr(entries, "items") and callable(entries.items):
            entries = entries.items()
        return JsObject((k, v) for k, v in entries)

    @staticmethod
    def keys(obj: Any) -> list[Any]:
        return list(obj.keys()) if hasattr(obj, "keys") else list(vars(obj))

    @staticmethod
    def entries(obj: Any) -> list[list[Any]]:
        items = obj.items() if hasattr(obj, "items") else vars(obj).items()
        return [[k, v] for k, v in items]

    @staticmethod
    def assign(target: Any, *sources: Any) -> Any:
        for source in sources:
            target.update(source)
        return target

    @staticmethod
    def new(*args: Any) -> JsObject:
        return JsObject(*args)

    @staticmethod
    def values(obj: Any) -> list[Any]:
        """``Object.values(WebSocketPair.new())`` and friends."""
        if hasattr(obj, "object_values"):
            return list(obj.object_values())
        return list(obj.values()) if hasattr(obj, "values") else list(vars(obj).values())


class JSON:
    @staticmethod
    def stringify(value: Any, replacer: Any = None, space: Any = None) -> str:
        if space:
            return _json.dumps(value, indent=space)
        return _json.dumps(value, separators=(",", ":"))

    @staticmethod
    def parse(text: str) -> Any:
        return _json.loads(text, object_hook=JsObject)


class Array(list):
    @classmethod
    def new(cls, *items: Any) -> "Array":
        return cls(items)

    @staticmethod
    def isArray(value: Any) -> bool:  # noqa: N802
        return isinstance(value, list)

    @classmethod
    def of(cls, *items: Any) -> "Array":
        return cls(items)

    @classmethod
    def from_(cls, items: Any) -> "Array":
        return cls(items)

    def push(self, *items: Any) -> int:
        self.extend(items)
        return len(self)

    @property
    def length(self) -> int:
        return len(self)

    def to_py(self, *args: Any, **kwargs: Any) -> list[Any]:
        return list(self)


setattr(Array, "from", Array.from_)


class Date:
    def __init__(self, ms: float | None = None) -> None:
        self._ms = _time.time() * 1000 if ms is None else float(ms)

    @classmethod
    def new(cls, ms: float | None = None) -> "Date":
        return cls(ms)

    @staticmethod
    def now() -> int:
        return int(_time.time() * 1000)

    def getTime(self) -> float:  # noqa: N802
        return self._ms

    def toISOString(self) -> str:  # noqa: N802
        secs, ms = divmod(int(self._ms), 1000)
        return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{ms:03d}Z"


class _Subtle:
    _ALGORITHMS = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
                   "MD5": "md5"}

    async def digest(self, algorithm: Any, data: Any) -> ArrayBuffer:
        name = algorithm if isinstance(algorithm, str) else algorithm.get("name", "")
        hashname = self._ALGORITHMS.get(str(name).upper())
        if hashname is None:
            raise ValueError(f"crypto.subtle.digest: unsupported algorithm {name!r}; use one of "
                             f"{', '.join(self._ALGORITHMS)}")
        raw = data.encode() if isinstance(data, str) else bytes(data)
        return ArrayBuffer(_hashlib.new(hashname, raw).digest())


class crypto:  # noqa: N801 - JavaScript's name
    subtle = _Subtle()

    @staticmethod
    def randomUUID() -> str:  # noqa: N802
        return str(_uuid.uuid4())

    @staticmethod
    def getRandomValues(array: Any) -> Any:  # noqa: N802
        """Fill a bytearray/memoryview in place, or return random bytes of a Uint8Array's size."""
        if isinstance(array, (bytearray, memoryview)):
            array[:] = _os.urandom(len(array))
            return array
        return Uint8Array(_os.urandom(len(array)))


def btoa(text: str) -> str:
    return _base64.b64encode(text.encode("latin-1")).decode()


def atob(text: str) -> str:
    return _base64.b64decode(text).decode("latin-1")


def __getattr__(name: str) -> Any:
    """Globals a binding kind provides (``caches``: bindings/cache), found on first use."""
    from edgelet.runtime.kinds import js_globals
    try:
        return js_globals()[name]
    except KeyError:
        raise AttributeError(f"module 'js' has no attribute {name!r}") from None


__all__ = ["Array", "ArrayBuffer", "Blob", "Date", "File", "FormData", "HTMLRewriter", "Headers", "JSON", "Math",
           "Object", "ReadableStream", "Request", "Response", "TextDecoder", "TextEncoder", "URL", "URLSearchParams",
           "Uint8Array", "WebSocket", "WebSocketPair", "WebSocketRequestResponsePair", "atob", "btoa",
           "clearInterval", "clearTimeout", "console", "crypto", "decodeURI", "decodeURIComponent", "encodeURI",
           "encodeURIComponent", "fetch", "navigator", "performance", "queueMicrotask", "setInterval", "setTimeout",
           "structuredClone"]
