"""Worker half of the Cache API: ``from js import caches``; ``caches.default`` and
``await caches.open(name)`` give a ``Cache`` whose ``match`` / ``put`` / ``delete`` reach
the host half (bindings/cache/plugin.py) with ``runtime.call_host("cache", ...)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgelet.runtime.http_types import Request, Response, absolute_url, drained, response_from_wire
from edgelet.runtime.isolate_api import IsolateServices

_runtime: IsolateServices | None = None
#: the longest name caches.open() takes (Miniflare's MAX_CACHE_NAME_SIZE)
MAX_CACHE_NAME = 1024


def setup(runtime: IsolateServices, options: dict[str, Any]) -> None:
    global _runtime
    _runtime = runtime


def _services() -> IsolateServices:
    if _runtime is None:
        raise RuntimeError("the Cache API (js.caches) is not available here: it is given to the "
                           "Python Workers of the config, not to a Worker Loader's code or outside "
                           "an isolate; call it from a Worker's handler")
    return _runtime


def _ignore_method(options: Any, kwargs: dict[str, Any]) -> bool:
    opts: dict[str, Any] = dict(kwargs)
    if options is not None:
        if not isinstance(options, Mapping):
            options = getattr(options, "to_py", lambda: options)()
        if not isinstance(options, Mapping):
            raise TypeError(f"cache options must be a dict such as {{'ignoreMethod': True}}, "
                            f"got {type(options).__name__}")
        opts.update(options)
    return bool(opts.get("ignoreMethod", opts.get("ignore_method", False)))


def _key(request: Any, where: str) -> tuple[str, str, dict[str, str]]:
    """(URL, method, lowercase request headers) of a cache key: a Request or a URL."""
    if isinstance(request, Request):
        return request.url, request.method, {n.lower(): v for n, v in request.headers.items()}
    if isinstance(request, str) or hasattr(request, "href"):
        return absolute_url(str(getattr(request, "href", request)), where), "GET", {}
    raise TypeError(f"{where}: the key must be a Request or an absolute URL string, "
                    f"got {type(request).__name__}")


class Cache:
    """One named cache (``caches.default`` is the one named "")."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def match(self, request: Any, options: Any = None, **kwargs: Any) -> Response | None:
        """The stored response (with ``cf-cache-status: HIT``), a 304/206/416 answer to the
        request's conditional or Range headers, or None. A non-GET request matches nothing
        unless ``{"ignoreMethod": True}``."""
        url, method, headers = _key(request, "cache.match()")
        if method != "GET" and not _ignore_method(options, kwargs):
            return None
        answer = await _services().call_host("cache", "match", self._name, url, headers)
        return None if answer is None else response_from_wire(answer, url)

    async def put(self, request: Any, response: Any) -> None:
        """Store ``response`` under ``request``. TypeError for a non-GET request, a 206 or
        ``Vary: *``; a response Cloudflare would not store (Set-Cookie, no-store, private,
        no-cache, max-age=0) is silently not stored, as there."""
        url, method, _ = _key(request, "cache.put()")
        if not isinstance(response, Response):
            raise TypeError(f"cache.put(): the value must be a Response, got {type(response).__name__}")
        if response.body_used:
            raise TypeError("cache.put(): the Response's body was already read; put a "
                            "resp.clone() made before reading it")
        response = await drained(response)
        response._used = True  # put reads the body, as on Cloudflare: return a clone's
        await _services().call_host("cache", "put", self._name, url, method, response.status,
                                    response.headers.to_list(), response._body)

    async def delete(self, request: Any, options: Any = None, **kwargs: Any) -> bool:
        """True when an entry was removed. A non-GET request deletes nothing unless
        ``{"ignoreMethod": True}``."""
        url, method, _ = _key(request, "cache.delete()")
        if method != "GET" and not _ignore_method(options, kwargs):
            return False
        return bool(await _services().call_host("cache", "delete", self._name, url))


class CacheStorage:
    """``js.caches``: the default cache and named ones."""

    def __init__(self) -> None:
        self.default = Cache("")

    async def open(self, name: str) -> Cache:
        """A named cache. As in Miniflare: "default" is reserved (use ``caches.default``) and a
        name has at most 1024 characters."""
        if not isinstance(name, str):
            raise TypeError(f"caches.open(name): name must be a str, got {type(name).__name__}")
        if name == "default":
            raise TypeError('caches.open("default"): "default" is reserved; use caches.default for the '
                            'default cache, or another name for a cache of your own')
        if len(name) > MAX_CACHE_NAME:
            raise TypeError(f"caches.open(name): the name has {len(name)} characters; use at most "
                            f"{MAX_CACHE_NAME}")
        return Cache(f"named:{name}")


caches = CacheStorage()

#: globals of the ``js`` module this kind provides (edgelet.runtime.kinds.js_globals)
JS_GLOBALS = {"caches": caches}
