"""What a request is checked against before a Worker sees it, for both places that serve
HTTP: the host (edgelet.server) and an isolate serving its own Worker's connections
(edgelet.runtime.http_server). Pure functions of an ASGI scope, importable in an isolate
(no starlette, no host)."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

DEFAULT_MAX_BODY = 100 * 1024 * 1024
#: a request body still arriving past this many bytes (one ASGI body message at most) reaches
#: the Worker while it streams in; a smaller one is read whole first, so when it is cut short
#: the Worker never runs (SPEC 5)
STREAM_AFTER = 64 * 1024


class BadRequest(ValueError):
    """A request edgelet refuses before routing it (400)."""


#: host[:port] (RFC 3986 reg-name restricted to what DNS and ``NAME.localhost`` use, an IPv4
#: address, or a bracketed IPv6 literal): nothing that could add a path, query, fragment or
#: userinfo when the host is pasted into the Worker's URL
_HOST_RE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})))"
                      r"(?::(?P<port>[0-9]{1,5}))?")


def request_host(scope: dict[str, Any]) -> str:
    """The request's validated ``host[:port]``: the Host header, or the address the request
    came in on when there is none (HTTP/1.0). Raise :class:`BadRequest` for a Host that is
    not a host[:port], for several Host headers, and for a target that is not a path."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    if not raw_path.startswith(b"/"):
        raise BadRequest(f"the request target {raw_path[:80].decode('latin-1')!r} is not a path; "
                         f"send a path that starts with /")
    values = [v for k, v in scope["headers"] if k == b"host"]
    if len(values) > 1:
        raise BadRequest("the request has more than one Host header; send one")
    if not values or not values[0]:
        server = scope.get("server")
        if not server:
            return "localhost"
        ip, port = server[0], server[1]
        name = f"[{ip}]" if ":" in ip else ip
        return name if port is None else f"{name}:{port}"
    return _checked_host(values[0])


@functools.lru_cache(maxsize=256)
def _checked_host(raw: bytes) -> str:
    """A Host header value checked once: clients send the same few on every request, so the
    regex and the IPv6 parse stay off the request path after the first."""
    host = raw.decode("latin-1")
    match = _HOST_RE.fullmatch(host)
    valid = match is not None
    if match and match["port"] is not None and int(match["port"]) > 65535:
        valid = False
    if match and match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            valid = False
    if not valid:
        raise BadRequest(f"the Host header {host[:80]!r} is not a valid host[:port]; send a host "
                         f"name or address, e.g. Host: localhost:8787 or Host: NAME.localhost")
    return host


def _may_have_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request declares a body (RFC 9112 6.3: a request without Content-Length
    or Transfer-Encoding has none; ``Content-Length: 0`` is none either)."""
    for key, value in headers:
        if key == b"content-length":
            if value != b"0":
                return True
        elif key == b"transfer-encoding":
            return True
    return False


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _raw_headers(headers: list[list[str]]) -> list[tuple[bytes, bytes]]:
    """A Worker's response headers for uvicorn, without Content-Length: the length is
    edgelet's to say (a framework's own would repeat it)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers if k != "content-length"]


def _not_an_upgrade(worker: str, path: str) -> list[Any]:
    """The 426 for a Worker that answered 101 to a request that asked for no WebSocket."""
    return _error_response(426, f"Worker {worker!r} answered {path} with a WebSocket (101), but the request "
                               f"is not a WebSocket upgrade; connect with a WebSocket client (ws://)")


def _url(scope: dict[str, Any], host: str) -> str:
    query = scope.get("query_string", b"")
    path = scope.get("raw_path") or scope["path"].encode()
    url = f"{scope.get('scheme', 'http')}://{host}{path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url




def _error_response(status: int, message: str) -> list[Any]:
    """edgelet.host.error_response (kept here too: an isolate does not import the host)."""
    return [status, [["content-type", "text/plain;charset=UTF-8"]], message.encode()]


def is_latin1(text: str) -> bool:
    """Whether ``text`` can be an HTTP header's bytes (names and values are Latin-1 on the wire)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
