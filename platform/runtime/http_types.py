"""Request, Response and Headers as a Python Worker sees them (Cloudflare's Python API).

They live here, not in the SDK folder, so the testing API and the host can use the same
classes; ``workers`` re-exports them inside isolates.
"""

from __future__ import annotations

import builtins
import json as _json
from collections.abc import Iterator, Mapping
from typing import Any

TEXT_PLAIN = "text/plain;charset=UTF-8"
APPLICATION_JSON = "application/json"


class Headers:
    """Case-insensitive, ordered, multi-valued headers (the Fetch API's ``Headers``)."""

    __slots__ = ("_items",)

    def __init__(self, init: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._items = list(init._items)
        elif isinstance(init, Mapping):
            for key, value in init.items():
                self.append(key, value)
        else:
            for key, value in init:
                self.append(key, value)

    @staticmethod
    def _name(name: Any) -> str:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        return str(name).lower()

    @staticmethod
    def _value(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return str(value)

    def get(self, name: str, default: Any = None) -> str | None:
        key = self._name(name)
        values = [v for k, v in self._items if k == key]
        if not values:
            return default
        return ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        key = self._name(name)
        return [v for k, v in self._items if k == key]

    getAll = get_all

    def has(self, name: str) -> bool:
        key = self._name(name)
        return any(k == key for k, _ in self._items)

    def set(self, name: str, value: Any) -> None:
        key = self._name(name)
        self._items = [(k, v) for k, v in self._items if k != key]
        self._items.append((key, self._value(value)))

    def append(self, name: str, value: Any) -> None:
        self._items.append((self._name(name), self._value(value)))

    def delete(self, name: str) -> None:
        key = self._name(name)
        self._items = [(k, v) for k, v in self._items if k != key]

    def items(self) -> list[tuple[str, str]]:
        """Pairs in order, one per value (``set-cookie`` stays separate)."""
        return list(self._items)

    entries = items

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for k, _ in self._items:
            seen.setdefault(k, None)
        return list(seen)

    def values(self) -> list[str]:
        return [self.get(k) or "" for k in self.keys()]

    def to_list(self) -> list[list[str]]:
        return [[k, v] for k, v in self._items]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, (str, bytes)) and self.has(name)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _body_bytes(body: Any) -> tuple[bytes, str | None]:
    """Bytes of a body and the content type it implies (None: leave unset)."""
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode("utf-8"), TEXT_PLAIN
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), None
    if hasattr(body, "to_bytes") and callable(body.to_bytes):  # pyodide buffers
        return bytes(body.to_bytes()), None
    raise TypeError(
        f"cannot use a {type(body).__name__} as a body; pass str, bytes or None "
        f"(for JSON use Response.json(data))")


class _Body:
    """Shared body readers: awaitable like the Fetch API's, but the bytes are already here."""

    _body: bytes
    headers: Headers

    async def text(self) -> str:
        return self._body.decode("utf-8", errors="replace")

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON; an empty or invalid body raises ``json.JSONDecodeError``
        (a ``ValueError``), as ``json.loads(await request.text())`` does on Cloudflare."""
        return _json.loads(await self.text(), **kwargs)

    async def bytes(self) -> bytes:
        return self._body

    async def arrayBuffer(self) -> builtins.bytes:  # noqa: N802 - Cloudflare's name
        return self._body

    array_buffer = arrayBuffer

    @property
    def body(self) -> builtins.bytes | None:
        return self._body or None

    @property
    def bodyUsed(self) -> bool:  # noqa: N802
        return False


class Request(_Body):
    """An incoming (or outgoing) HTTP request."""

    def __init__(self, url: str | Request, method: str | None = None, headers: Any = None,
                 body: Any = None, **options: Any) -> None:
        if isinstance(url, Request):
            base = url
            url = base.url
            method = method or base.method
            headers = headers if headers is not None else base.headers
            body = body if body is not None else base._body
        if "init" in options and isinstance(options["init"], Mapping):
            init = options["init"]
            method = method or init.get("method")
            headers = headers if headers is not None else init.get("headers")
            body = body if body is not None else init.get("body")
        self.url: str = str(url)
        self.method: str = (method or "GET").upper()
        self.headers = Headers(headers)
        self._body, implied = _body_bytes(body)
        if implied and not self.headers.has("content-type"):
            self.headers.set("content-type", implied)
        self.cf: dict[str, Any] = {}

    def clone(self) -> Request:
        return Request(self.url, self.method, self.headers, self._body)

    @property
    def js_object(self) -> Request:
        """Pyodide-era scripts pass ``request.js_object`` to bindings; here it is the request."""
        return self

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class _ClassOrInstance:
    """``Response.json(data)`` builds a response; ``await resp.json()`` reads one.

    Cloudflare's API uses one name for both, so the attribute picks by how it is reached.
    """

    def __init__(self, on_class: str, on_instance: str) -> None:
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, obj: Any, cls: type) -> Any:
        if obj is None:
            return getattr(cls, self.on_class)
        return getattr(obj, self.on_instance)


class Response(_Body):
    """An HTTP response. A ``str`` body gets ``text/plain;charset=UTF-8`` as in Cloudflare."""

    def __init__(self, body: Any = None, status: int = 200, headers: Any = None,
                 status_text: str = "", **options: Any) -> None:
        status = options.pop("statusText", None) and status or status
        if "init" in options and isinstance(options["init"], Mapping):
            init = options["init"]
            status = init.get("status", status)
            headers = headers if headers is not None else init.get("headers")
        if isinstance(body, (dict, list)):
            raise TypeError("Response body is a dict/list; use Response.json(data) to send JSON")
        if not isinstance(status, int) or not 200 <= status <= 599 and status != 101:
            raise ValueError(f"Response status must be an int from 200 to 599, got {status!r}")
        self.status = status
        self.status_text = status_text
        self.headers = Headers(headers)
        # A stream that must be awaited (a large R2 body) is read when the handler returns.
        self._deferred = body if getattr(body, "edgelet_deferred", False) else None
        self._body, implied = _body_bytes(None if self._deferred is not None else body)
        if implied and not self.headers.has("content-type"):
            self.headers.set("content-type", implied)
        self.url = ""
        #: the client half of a WebSocketPair, for a 101 (edgelet.runtime.websocket)
        self.web_socket = options.get("web_socket", options.get("webSocket"))

    @property
    def webSocket(self) -> Any:  # noqa: N802 - Cloudflare's name
        return self.web_socket

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def statusText(self) -> str:  # noqa: N802
        return self.status_text

    @classmethod
    def _make_json(cls, data: Any, status: int = 200, headers: Any = None, **options: Any) -> Response:
        hdrs = Headers(headers)
        if not hdrs.has("content-type"):
            hdrs.set("content-type", APPLICATION_JSON)
        return cls(_json.dumps(data, separators=(",", ":")), status=status, headers=hdrs, **options)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, got {status}")
        return cls(None, status=status, headers={"location": str(url)})

    @classmethod
    def new(cls, body: Any = None, init: Any = None, **options: Any) -> Response:
        """The ``js.Response.new(body, headers=...)`` form of Pyodide-era scripts."""
        if isinstance(init, Mapping):
            options = {**init, **options}
        return cls(body, status=options.get("status", 200), headers=options.get("headers"),
                   web_socket=options.get("webSocket", options.get("web_socket")))

    def clone(self) -> Response:
        return Response(self._body, self.status, self.headers)

    def __repr__(self) -> str:
        return f"<Response {self.status}>"

    json = _ClassOrInstance("_make_json", "_read_json")

    async def _read_json(self, **kwargs: Any) -> Any:
        return _json.loads(await self.text(), **kwargs)


def request_for_fetch(resource: Any, options: Mapping[str, Any] | None, kwargs: Mapping[str, Any],
                      origin: str) -> Request:
    """The Request of a binding's ``fetch(resource, options, **kwargs)``.

    ``resource`` is a Request or a URL; a path (``/x``) or a bare name is resolved
    against ``origin`` (``http://name.localhost``), since bindings have no real host.
    """
    opts = {**(options or {}), **kwargs}
    if isinstance(resource, Request) and not opts:
        return resource
    url = resource.url if isinstance(resource, Request) else str(resource)
    if url.startswith("/"):
        url = origin + url
    elif "://" not in url:
        url = f"{origin}/{url}"
    base = resource if isinstance(resource, Request) else url
    req = Request(base, method=opts.get("method"), headers=opts.get("headers"), body=opts.get("body"))
    req.url = url
    return req


def response_to_wire(resp: Any) -> list[Any]:
    """[status, headers, body] of whatever a handler returned, with a clear error otherwise."""
    if isinstance(resp, Response):
        if resp.status == 101:  # a WebSocket upgrade: the token names the socket to the host
            from edgelet.runtime.websocket import upgrade_headers
            return [101, upgrade_headers(resp), b""]
        return [resp.status, resp.headers.to_list(), resp._body]
    if isinstance(resp, str):
        return [200, [["content-type", TEXT_PLAIN]], resp.encode()]
    raise TypeError(
        f"fetch handler returned {type(resp).__name__}, expected a workers.Response; "
        f"return Response('text') or Response.json(data)")


def response_from_wire(data: list[Any], url: str = "") -> Response:
    status, headers, body = data
    resp = Response.__new__(Response)
    resp.status = status
    resp.status_text = ""
    resp.headers = Headers(headers)
    resp._body = bytes(body)
    resp.url = url
    resp.web_socket = None
    if status == 101:  # passed on from another Worker or object (edgelet.runtime.websocket)
        from edgelet.runtime.websocket import client_from_headers
        resp.web_socket = client_from_headers(resp.headers)
    return resp


def request_to_wire(req: Request) -> list[Any]:
    return [req.method, req.url, req.headers.to_list(), req._body]


def request_from_wire(data: list[Any]) -> Request:
    method, url, headers, body = data
    req = Request.__new__(Request)
    req.url = url
    req.method = method
    req.headers = Headers(headers)
    req._body = bytes(body)
    req.cf = {}
    return req
