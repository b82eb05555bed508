"""Request, Response and Headers as a Python Worker sees them (Cloudflare's Python API).

They live here, not in the SDK folder, so the testing API and the host can use the same
classes; ``workers`` re-exports them inside isolates.
"""

from __future__ import annotations

import builtins
import http.client
import json as _json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from http import HTTPMethod, HTTPStatus
from typing import Any

from edgelet.runtime.cf import as_cf, incoming_cf

TEXT_PLAIN = "text/plain;charset=UTF-8"
APPLICATION_JSON = "application/json"

# RFC 9110's token: what a header name may hold (the Fetch API refuses anything else)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK = re.compile(r"[\r\n\0]")
#: names already checked (a Worker sets the same few again and again), kept small
_GOOD_NAMES: set[str] = set()


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
            if isinstance(init, (str, bytes)) or not hasattr(init, "__iter__"):
                raise TypeError(f"Received unexpected type for headers argument: {type(init).__name__} "
                                f"({init!r:.60}); pass a dict, a list of (name, value) pairs or a Headers")
            for pair in init:
                if isinstance(pair, (str, bytes)) or len(pair) != 2:
                    raise TypeError(f"Headers(): expected [name, value] pairs, got {pair!r}; pass a "
                                    f"dict, a list of 2-item pairs or another Headers")
                self.append(pair[0], pair[1])

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

    @staticmethod
    def _check(name: str, value: str) -> None:
        """Refuse what no HTTP message can carry, as the Fetch API's ``Headers`` does (a
        ``TypeError`` where the header is set), instead of a response the server cannot
        write: a name that is not a token, a value with CR, LF or NUL (header injection)."""
        if name not in _GOOD_NAMES:
            if _TOKEN.fullmatch(name) is None:
                raise TypeError(f"Invalid header name {name!r}: a header name is letters, digits and "
                                f"!#$%&'*+-.^_`|~ only (no spaces, colons or line breaks)")
            if len(_GOOD_NAMES) < 1024:
                _GOOD_NAMES.add(name)
        # CR, LF and NUL are not printable: the usual value passes on isprintable() alone
        if not value.isprintable() and _LINE_BREAK.search(value) is not None:
            raise TypeError(f"Invalid header value for {name!r}: {value!r} holds a line break or "
                            f"NUL, which would end the header; remove them (encode the value, e.g. "
                            f"urllib.parse.quote, if it must carry them)")

    def get(self, name: str, default: Any = None) -> str | None:
        key = self._name(name)
        values = [v for k, v in self._items if k == key]
        if not values:
            return default
        return ", ".join(values)

    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any:
        """Every value of ``name``, or ``failobj`` (None) when it has none: the SDK's headers
        are an ``http.client.HTTPMessage``, whose ``get_all`` says so."""
        key = self._name(name)
        return [v for k, v in self._items if k == key] or failobj

    getAll = get_all

    def getSetCookie(self) -> list[str]:  # noqa: N802 - the Fetch API's name
        """Each ``set-cookie`` value on its own: ``get("set-cookie")`` joins them with ", ",
        which breaks cookies whose ``Expires`` holds a comma."""
        return [v for k, v in self._items if k == "set-cookie"]

    get_set_cookie = getSetCookie

    def has(self, name: str) -> bool:
        key = self._name(name)
        return any(k == key for k, _ in self._items)

    def set(self, name: str, value: Any) -> None:
        key = self._name(name)
        text = self._value(value)
        self._check(key, text)
        self._items = [(k, v) for k, v in self._items if k != key]
        self._items.append((key, text))

    def append(self, name: str, value: Any) -> None:
        if type(name) is str and type(value) is str:  # the common case, without the helpers
            name = name.lower()
            if name not in _GOOD_NAMES or not value.isprintable():  # else known good: no call
                self._check(name, value)
        else:
            name, value = self._name(name), self._value(value)
            self._check(name, value)
        self._items.append((name, value))

    @classmethod
    def _of_pairs(cls, pairs: list[Any]) -> Headers:
        """Headers of ``[name, value]`` pairs as the channel carries them (str, usually
        lower-case already): what ``Headers(pairs)`` gives, without a call per header."""
        headers = cls.__new__(cls)
        items: list[tuple[str, str]] = []
        for name, value in pairs:
            if type(name) is str and type(value) is str:
                items.append((name.lower(), value))
            else:
                items.append((cls._name(name), cls._value(value)))
        headers._items = items
        return headers

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

    def __getitem__(self, name: str) -> str | None:
        """The value, or None when the header is absent: on Cloudflare ``request.headers``
        is an ``http.client.HTTPMessage``, whose ``headers["x"]`` gives None for a missing
        header, so scripts write ``if request.headers["authorization"] is None``."""
        return self.get(name)

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

    @classmethod
    def new(cls, init: Any = None) -> Headers:
        """``js.Headers.new(...)`` of Pyodide-era scripts."""
        return cls(init)

    # The reading half of ``email.message.Message`` (what Cloudflare's ``request.headers``,
    # an ``http.client.HTTPMessage``, offers): parameters of Content-Type and friends.
    def _message(self) -> http.client.HTTPMessage:
        message = http.client.HTTPMessage()
        for name, value in self._items:
            message[name] = value
        return message

    def get_content_type(self) -> str:
        """``"text/html"`` of ``Content-Type: text/HTML; charset=utf-8``; ``"text/plain"``
        when absent or malformed (RFC 2045, as HTTPMessage answers)."""
        return self._message().get_content_type()

    def get_content_maintype(self) -> str:
        return self._message().get_content_maintype()

    def get_content_subtype(self) -> str:
        return self._message().get_content_subtype()

    def get_content_charset(self, failobj: Any = None) -> Any:
        """The lower-cased ``charset`` parameter of Content-Type, or ``failobj``."""
        return self._message().get_content_charset(failobj)

    def get_param(self, param: str, failobj: Any = None, header: str = "content-type",
                  unquote: bool = True) -> Any:
        return self._message().get_param(param, failobj, header, unquote)

    def get_params(self, failobj: Any = None, header: str = "content-type",
                   unquote: bool = True) -> Any:
        return self._message().get_params(failobj, header, unquote)

    def get_filename(self, failobj: Any = None) -> Any:
        """The ``filename`` of Content-Disposition (an upstream response's attachment)."""
        return self._message().get_filename(failobj)


def _body_bytes(body: Any) -> tuple[bytes, str | None]:
    """Bytes of a body and the content type it implies (None: leave unset)."""
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode("utf-8"), TEXT_PLAIN
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), None
    if isinstance(body, (int, float)):  # int has to_bytes too: 5 would be sent as b"\x05"
        raise TypeError(f"cannot use a {type(body).__name__} ({body!r}) as a body; pass "
                        f"str({body!r}) for its text, or Response.json({body!r}) for JSON")
    if hasattr(body, "to_bytes") and callable(body.to_bytes):  # pyodide buffers
        return bytes(body.to_bytes()), None
    from edgelet.runtime.formdata import Blob, FormData
    if isinstance(body, FormData):
        return body.encode()
    if isinstance(body, Blob):
        return body._data, body.content_type or None
    raise TypeError(
        f"cannot use a {type(body).__name__} as a body; pass str, bytes or None "
        f"(for JSON use Response.json(data))")


class _Body:
    """Shared body readers: awaitable like the Fetch API's, but the bytes are already here."""

    _body: bytes
    headers: Headers

    async def _whole(self) -> builtins.bytes:
        """The whole body (a streamed request body is read to its end first)."""
        return self._body

    #: set by the first read through ``text()``, ``json()``, ``bytes()``, ... (``body_used``)
    _used = False

    async def _read(self) -> builtins.bytes:
        """The whole body for one of the public readers, once: as in Cloudflare's SDK (a
        request) and Pyodide's FetchResponse and workerd (a response), the second read
        raises ``OSError`` (there, and so here, before production does)."""
        if self._used:
            raise self._used_error()
        self._used = True
        return await self._whole()

    def _used_error(self) -> OSError:
        """What a second read raises (each kind names itself and the way out)."""
        return OSError("Body already used")

    async def text(self) -> str:
        return (await self._read()).decode("utf-8", errors="replace")

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON; an empty or invalid body raises ``json.JSONDecodeError``
        (a ``ValueError``), as ``json.loads(await request.text())`` does on Cloudflare."""
        return _json.loads(await self.text(), **kwargs)

    async def bytes(self) -> builtins.bytes:
        return await self._read()

    async def arrayBuffer(self) -> Any:  # noqa: N802 - Cloudflare's name
        from edgelet.runtime.jstypes import ArrayBuffer
        return ArrayBuffer(await self._read())

    array_buffer = arrayBuffer
    #: the SDK's name for arrayBuffer (pyodide's FetchResponse.buffer)
    buffer = arrayBuffer

    async def form_data(self) -> Any:
        """The body as a ``workers.FormData`` (multipart or url-encoded)."""
        from edgelet.runtime.formdata import FormData
        return FormData.parse(await self._read(), self.headers.get("content-type"))

    formData = form_data  # noqa: N815

    async def blob(self) -> Any:
        from edgelet.runtime.formdata import Blob
        return Blob([await self._read()], self.headers.get("content-type"))

    @property
    def body(self) -> Any:
        """A ``ReadableStream`` of the body (``async for chunk in ...``, ``getReader()``), or
        None when there is none, as on Cloudflare."""
        if not self._body:
            return None
        from edgelet.runtime.jstypes import ReadableStream
        return ReadableStream(self._body)

    @property
    def bodyUsed(self) -> bool:  # noqa: N802
        return self._used

    body_used = bodyUsed


def _method(value: Any) -> str:
    """An ``http.HTTPMethod`` for the standard methods (a str enum: ``== "GET"`` holds and
    ``.value`` works, as in Cloudflare's SDK); the other methods workerd knows stay plain
    upper-case str; anything else is workerd's ``TypeError: Invalid HTTP method string``."""
    if value is None:
        return HTTPMethod.GET
    name = str(value).upper()
    method = _METHODS.get(name)
    if method is not None:
        return method
    if name in _OTHER_METHODS:
        return name
    raise TypeError(f"Invalid HTTP method string: {value!r}; use a method such as GET, POST, PUT, PATCH, "
                    f"DELETE, HEAD or OPTIONS")


_METHODS: dict[str, str] = {m.value: m for m in HTTPMethod}
#: the methods besides http.HTTPMethod's that workerd's Request accepts (kj::HttpMethod)
_OTHER_METHODS = frozenset({"PURGE", "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH",
                            "UNLOCK", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY",
                            "SUBSCRIBE", "UNSUBSCRIBE"})


#: marks a request from a client: its ``cf`` is the placeholder (see ``Request.cf``)
_INCOMING_CF: Any = object()


def absolute_url(url: Any, where: str) -> str:
    """``url`` parsed as the WHATWG URL standard says (what ``new Request(url)`` does in
    workerd), serialized; a TypeError for a string that is not an absolute URL.

    Why a real parser (ada, the one Node uses): a Worker has no base URL, so ``Request("/x")``
    and ``Request("not a url")`` throw on Cloudflare, and a hand-written check would accept or
    refuse a different set of strings than Cloudflare does."""
    from ada_url import URL  # imported on first use: most isolates never construct a Request
    text = str(url)
    try:
        return str(URL(text).href)
    except ValueError:
        shown = repr(text) if len(text) <= 100 else repr(text[:97]) + "..."
        hint = ("a Worker has no base URL to resolve a path against; give a full URL such as "
                "'https://example.com/path'" if text.startswith("/") or "://" not in text else
                "check the scheme, the host (no spaces) and the port")
        raise TypeError(f"Invalid URL: {where}: {shown} is not an absolute URL; {hint}") from None


#: statuses whose responses have no body (the Fetch standard's "null body status"); a 101 is
#: left to the WebSocket upgrade path (edgelet.runtime.websocket), which answers a plain
#: request's 101 with a 426 and cancels any body
_NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})


def _finite(value: Any) -> Any:
    """``value`` with every NaN/Infinity float replaced by None, as ``JSON.stringify`` writes
    them (``Response.json`` on Cloudflare goes through it)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Request(_Body):
    """An incoming (or outgoing) HTTP request.

    A large incoming body may still be arriving while the Worker runs (``_source``, see
    edgelet.runtime.request_body): the readers wait for it, ``body`` streams it."""

    #: the body still streaming in from the client (an IncomingBody), or None
    _source: Any = None

    def __init__(self, input: str | Request, method: str | None = None, headers: Any = None,  # noqa: A002
                 body: Any = None, **options: Any) -> None:
        url: Any = input
        base: Request | None = None
        # what this call sets itself: a body copied from another Request passes through as
        # it came (workerd lets a proxied GET keep one), a new one must not go with GET/HEAD
        given_body = body if body is not None else (options["init"].get("body") if isinstance(
            options.get("init"), Mapping) else None)
        if isinstance(url, Request):
            base = url
            url = base.url  # already parsed when that request was made
            method = method or base.method
            headers = headers if headers is not None else base.headers
            body = body if body is not None else base._body
        if "init" in options and isinstance(options["init"], Mapping):
            init = options["init"]
            method = method or init.get("method")
            headers = headers if headers is not None else init.get("headers")
            body = body if body is not None else init.get("body")
        self.url: str = url if isinstance(input, Request) else absolute_url(url, "Request()")
        self.method: str = _method(method)
        if given_body is not None and self.method in (HTTPMethod.GET, HTTPMethod.HEAD):
            raise TypeError(f"Request with a GET or HEAD method cannot have a body ({self.method} {self.url}); "
                            f"pass method='POST' (or PUT, PATCH) to send one")
        self.headers = Headers(headers)
        self._body, implied = _body_bytes(body)
        if implied and not self.headers.has("content-type"):
            self.headers.set("content-type", implied)
        init_options = options["init"] if isinstance(options.get("init"), Mapping) else {}
        cf = options.get("cf", init_options.get("cf"))
        self._cf = as_cf(cf) if cf is not None else (base.cf if base is not None else None)
        redirect = options.get("redirect", init_options.get("redirect"))
        if redirect is not None:
            if redirect not in ("follow", "manual", "error"):
                raise TypeError(f"Request(): redirect must be one of 'follow', 'manual', 'error', got {redirect!r}")
            self.redirect = redirect
        elif base is not None and base.redirect != "follow":
            self.redirect = base.redirect

    #: an incoming request's ``cf`` is built on first read (few Workers read it)
    _cf: Any = _INCOMING_CF

    @property
    def cf(self) -> Any:
        """Cloudflare's ``cf`` properties: for a request from a client, the placeholder of
        edgelet.runtime.cf (``request.cf.country``, ``request.cf["colo"]``); for a
        ``Request(...)`` built by the Worker, the ``cf=`` it was given, else None (as the SDK's
        ``Request.cf`` says)."""
        cf = self._cf
        if cf is _INCOMING_CF:
            cf = self._cf = incoming_cf()
        return cf

    @cf.setter
    def cf(self, value: Any) -> None:
        self._cf = as_cf(value)

    @property
    def _body(self) -> builtins.bytes:
        if self._source is not None:
            raise RuntimeError(
                f"the body of {self.method} {self.url} is still streaming in from the client; "
                f"read it first (`await request.bytes()`, `.text()`, `.json()`) or stream it "
                f"(`async for chunk in request.body`)")
        return self._data

    @_body.setter
    def _body(self, value: builtins.bytes) -> None:
        self._data = value

    async def _whole(self) -> builtins.bytes:
        source = self._source
        if source is not None:
            self._data = await source.read_all()
            self._source = None
        return self._data

    @property
    def body(self) -> Any:
        """A ``ReadableStream`` of the body (``async for chunk in ...``, ``getReader()``), or
        None when there is none; a body still streaming in is read as it arrives."""
        source = self._source
        if source is None:
            return _Body.body.fget(self)  # type: ignore[attr-defined]
        from edgelet.runtime.jstypes import ReadableStream
        return ReadableStream(source.chunks())

    def _used_error(self) -> OSError:
        return OSError(f"Body already used: the body of {self.method} {self.url} was read before; keep "
                       f"what the first read returned (e.g. `raw = await request.bytes()`, then "
                       f"`raw.decode()`, `json.loads(raw)`), or read a `request.clone()` first")

    def clone(self) -> Request:
        if self._used:
            raise self._used_error()
        # copied field by field: the constructor would refuse a GET's (empty) body
        clone = Request.__new__(Request)
        clone.url, clone.method, clone.headers = self.url, self.method, Headers(self.headers)
        clone._body = self._body
        clone._cf = self._cf
        if self.redirect != "follow":
            clone.redirect = self.redirect
        return clone

    @classmethod
    def new(cls, input: Any, init: Any = None, **options: Any) -> Request:  # noqa: A002
        """``js.Request.new(url, method=..., headers=..., body=...)`` of Pyodide-era scripts."""
        if isinstance(init, Mapping):
            options = {**init, **options}
        return cls(input, options.pop("method", None), options.pop("headers", None),
                   options.pop("body", None), **options)

    @property
    def js_object(self) -> Request:
        """Pyodide-era scripts pass ``request.js_object`` to bindings; here it is the request."""
        return self

    @property
    def _js_request(self) -> Request:
        """The SDK's own name for the JS request (Cloudflare's Worker Loader example passes
        ``request._js_request`` to ``fetch``); here it is the request."""
        return self

    # Fetch API properties Cloudflare's SDK exposes; constant for a Worker's request
    cache = "default"
    credentials = "same-origin"
    destination = ""
    integrity = ""
    is_history_navigation = False
    keepalive = False
    mode = "cors"
    redirect = "follow"
    referrer = "about:client"
    referrer_policy = ""

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


def _is_stream(body: Any) -> bool:
    """An async iterator/generator (or a ReadableStream) is sent as it is produced."""
    return hasattr(body, "__aiter__")


def _status_range_error(status: Any) -> Exception:
    """What ``Response(body, status=999)`` raises: on Cloudflare the Python SDK hands the
    status to JavaScript's ``new Response()``, whose ``RangeError`` reaches the Worker as
    ``pyodide.ffi.JsException`` (``.name == "RangeError"``), not as ``ValueError``; the text
    is workerd's, followed by the value given. Built only on a refusal."""
    message = (f"Responses may only be constructed with status codes in the range 200 to 599, "
               f"inclusive. (Response status {status!r}: use an int from 200 to 599, or 101 with "
               f"web_socket=)")
    try:  # inside an isolate the SDK folder is on sys.path; Workers catch this class
        from pyodide.ffi import JsException
    except ImportError:  # pragma: no cover - the host process (edgelet.testing)
        return ValueError(message)
    error = JsException(f"RangeError: {message}")
    error.name = "RangeError"  # as Pyodide's JsException has
    error.message = message
    return error


class Response(_Body):
    """An HTTP response. A ``str`` body gets ``text/plain;charset=UTF-8`` as in Cloudflare.

    The signature is that of Cloudflare's SDK (``body, status, status_text, headers,
    web_socket``); a third positional argument that is not a str is taken as ``headers``,
    which edgelet accepted there before. A body that is an async iterator or generator is
    streamed: each chunk reaches the client as it is produced.
    """

    def __init__(self, body: Any = None, status: int | None = None, status_text: Any = "",
                 headers: Any = None, web_socket: Any = None, **options: Any) -> None:
        if isinstance(body, Response):
            self._wrap(body, status, status_text, headers, web_socket, options)
            return
        if options or type(status_text) is not str:  # the rarer spellings (init=, statusText=)
            if not isinstance(status_text, str) and headers is None:
                status_text, headers = "", status_text
            status_text = options.pop("statusText", None) or status_text or ""
            if "init" in options and isinstance(options["init"], Mapping):
                init = options["init"]
                status = init.get("status", status)
                headers = headers if headers is not None else init.get("headers")
                web_socket = web_socket if web_socket is not None else init.get("webSocket")
            web_socket = web_socket if web_socket is not None else options.get("webSocket")
        if status is None:
            status = 200
        elif type(status) is not int:
            status = int(status) if isinstance(status, HTTPStatus) else status
            if not isinstance(status, int):
                raise _status_range_error(status)
        if not 200 <= status <= 599 and status != 101:
            raise _status_range_error(status)
        if status in _NULL_BODY_STATUSES and status != 101 and body is not None and not (
                isinstance(body, (str, bytes, bytearray, memoryview)) and len(body) == 0):
            raise TypeError(f"Response with null body status (101, 204, 205, or 304) cannot have a body: status "
                            f"{status} with a {type(body).__name__} body; pass None as the body")
        self.status = status
        self.status_text = status_text
        self.headers = Headers(headers)
        #: the client end of a WebSocketPair this response upgrades to (status 101)
        self.web_socket = web_socket
        self.url = ""
        self._stream: Any = None
        if type(body) is str:  # the common case: what _body_bytes does for a str
            self._body = body.encode("utf-8")
            if headers is None:
                self.headers._items.append(("content-type", TEXT_PLAIN))
            elif not self.headers.has("content-type"):
                self.headers.set("content-type", TEXT_PLAIN)
            return
        if isinstance(body, (dict, list)):
            raise TypeError("Response body is a dict/list; use Response.json(data) to send JSON")
        if _is_stream(body):
            self._stream = body
            self._body = b""
            return
        if hasattr(body, "__next__"):  # a sync generator: joined, nothing to wait for
            body = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in body)
        self._body, implied = _body_bytes(body)
        if implied and not self.headers.has("content-type"):
            self.headers.set("content-type", implied)

    def _wrap(self, other: Response, status: Any, status_text: Any, headers: Any, web_socket: Any,
              options: Mapping[str, Any]) -> None:
        """``Response(resp)``: the SDK's way to wrap a JavaScript Response (``Response(await
        js.fetch(url))``, ``Response(resp.js_object)``); here a copy sharing the body. Options
        beside it are refused as by the SDK."""
        if status is not None or status_text or headers is not None or web_socket is not None or options:
            raise ValueError("Expected no options when constructing Response from a js.Response: pass "
                             "only the response (Response(resp)), or use resp.replace_body(...) or "
                             "Response(await resp.bytes(), status=..., headers=...) to change it")
        self.status, self.status_text = other.status, other.status_text
        self.headers = Headers(other.headers)
        self.web_socket, self.url = other.web_socket, other.url
        self._stream, self._body = other._stream, other._body
        self._used = other._used
        other._stream = None  # a stream is read once: it moves to the new Response

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def statusText(self) -> str:  # noqa: N802
        return self.status_text

    @property
    def webSocket(self) -> Any:  # noqa: N802
        return self.web_socket

    @property
    def js_object(self) -> Response:
        return self

    js_response = js_object

    async def string(self) -> str:
        """pyodide.http.FetchResponse's name for text()."""
        return await self.text()

    async def memoryview(self) -> memoryview:
        return memoryview(await self.bytes())

    def raise_for_status(self) -> None:
        """OSError for a 4xx/5xx status, as pyodide.http.FetchResponse does."""
        if self.status >= 400:
            kind = "Client" if self.status < 500 else "Server"
            raise OSError(f"{self.status} {kind} Error: {self.status_text} for url: {self.url}")

    @property
    def body(self) -> Any:
        if self._stream is not None:
            from edgelet.runtime.jstypes import ReadableStream
            return ReadableStream(self._stream)
        return super().body

    type = "default"
    redirected = False

    @classmethod
    def _make_json(cls, data: Any, status: int = 200, status_text: Any = "", headers: Any = None,
                   **options: Any) -> Response:
        if not isinstance(status_text, str) and headers is None:
            status_text, headers = "", status_text
        hdrs = Headers(headers)
        if not hdrs.has("content-type"):
            hdrs.set("content-type", APPLICATION_JSON)
        try:
            text = _json.dumps(data, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN/Infinity: JSON has none; JSON.stringify (Cloudflare's) writes null
            text = _json.dumps(_finite(data), separators=(",", ":"), allow_nan=False)
        return cls(text, status, status_text, hdrs, **options)

    from_json = _make_json

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        status = int(status)
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, got {status}")
        try:  # workerd parses it with no base URL: a path is refused, not sent as Location
            location = absolute_url(url, "Response.redirect()")
        except TypeError as exc:
            raise TypeError(f"Unable to parse URL: {url}: {exc}") from None
        return cls(None, status=status, headers={"location": location})

    @classmethod
    def new(cls, body: Any = None, init: Any = None, **options: Any) -> Response:
        """The ``js.Response.new(body, headers=...)`` form of Pyodide-era scripts."""
        if isinstance(init, Mapping):
            options = {**init, **options}
        return cls(body, status=options.get("status", 200), headers=options.get("headers"),
                   status_text=options.get("statusText", ""),
                   web_socket=options.get("webSocket", options.get("web_socket")))

    def replace_body(self, body: Any) -> Response:
        """A new Response with this one's status and headers and another body."""
        return Response(body, self.status, self.status_text, self.headers)

    def clone(self) -> Response:
        if self._used:
            raise self._used_error()
        if self._stream is not None:
            raise TypeError("a streamed Response cannot be cloned: its body is produced once")
        return Response(self._body, self.status, self.status_text, self.headers)

    def __repr__(self) -> str:
        return f"<Response {self.status}>"

    json = _ClassOrInstance("_make_json", "_read_json")

    async def _read_json(self, **kwargs: Any) -> Any:
        return _json.loads(await self.text(), **kwargs)

    async def _drain(self) -> None:
        """Read a streamed body into ``_body`` (for readers and for callers without streaming)."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            chunks = []
            async for chunk in stream:
                chunks.append(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
            self._body = b"".join(chunks)

    async def _whole(self) -> builtins.bytes:
        await self._drain()
        return self._body

    def _used_error(self) -> OSError:
        where = f" of {self.url}" if self.url else ""
        return OSError(f"Response body is already used: the body{where} (status {self.status}) was "
                       f"read before; keep what the first read returned (e.g. `raw = await "
                       f"resp.bytes()`, then `raw.decode()`, `json.loads(raw)`), or read a "
                       f"`resp.clone()` first")


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


async def buffered(resource: Any) -> Any:
    """``resource`` with a request body that is still streaming in read whole: for the
    callers that pass a request on (service bindings, Durable Object stubs, ``fetch``)."""
    if isinstance(resource, Request) and resource._source is not None:
        await resource._whole()
    return resource


def response_to_wire(resp: Any) -> list[Any]:
    """[status, headers, body] of whatever a handler returned, with a clear error otherwise.

    A streamed Response must be drained first (``await drained(resp)``) or sent with
    :func:`stream_to_wire`."""
    if isinstance(resp, Response):
        if resp.status == 101:  # a WebSocket upgrade: the token names the socket to the host
            from edgelet.runtime.websocket import upgrade_headers
            return [101, upgrade_headers(resp), b""]
        if resp._stream is not None:
            raise TypeError("a streamed Response reached response_to_wire; await drained(resp) first")
        return [resp.status, resp.headers.to_list(), resp._body]
    if isinstance(resp, str):
        return [200, [["content-type", TEXT_PLAIN]], resp.encode()]
    raise TypeError(
        f"fetch handler returned {type(resp).__name__}, expected a workers.Response; "
        f"return Response('text') or Response.json(data)")


async def drained(resp: Any) -> Any:
    """``resp`` with a streamed body read whole: for callers that take whole bodies
    (service bindings, Durable Object fetch)."""
    if isinstance(resp, Response) and resp._stream is not None:
        await resp._drain()
    return resp


async def chunks_of(resp: Response) -> AsyncIterator[builtins.bytes]:
    """The chunks of a streamed Response as bytes (str chunks are UTF-8 encoded)."""
    stream, resp._stream = resp._stream, None
    if stream is None:
        return
    try:
        async for chunk in stream:
            data = chunk.encode() if isinstance(chunk, str) else builtins.bytes(chunk)
            if data:
                yield data
    finally:  # closed early (the client went away): the Worker's generator is closed too
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def response_from_wire(data: list[Any], url: str = "") -> Response:
    status, headers, body = data
    resp = Response.__new__(Response)
    resp.status = status
    resp.status_text = ""
    resp.headers = Headers(headers)
    resp._body = bytes(body)
    resp._stream = None
    resp.web_socket = None
    resp.url = url
    resp.web_socket = None
    if status == 101:  # passed on from another Worker or object (edgelet.runtime.websocket)
        from edgelet.runtime.websocket import client_from_headers
        resp.web_socket = client_from_headers(resp.headers)
    return resp


def request_to_wire(req: Request) -> list[Any]:
    return [req.method, req.url, req.headers.to_list(), req._body]


def request_from_wire(data: list[Any]) -> Request:
    method, url, headers, body = data[:4]
    req = Request.__new__(Request)
    req.url = url
    req.method = _METHODS.get(method, method)
    req.headers = Headers._of_pairs(headers)
    req._body = body if type(body) is bytes else bytes(body)
    return req
