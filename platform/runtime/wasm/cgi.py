"""The request/response contract of Wasm Workers, as pure functions (no wasmtime here).

A request reaches a command module (``_start``) the way CGI and WAGI hand it over: the
request line and headers as environment variables, the body on stdin. A reactor module
(exported ``fetch``) gets the same request as one HTTP/1.1 message in its memory. Either
way the answer is a CGI response: header lines, a blank line, the body. See docs/wasm.md.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import unquote

#: a header name as RFC 9110 defines a token
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS = re.compile(rb"^\s*(\d{3})(?:\s+.*)?$")


class MalformedResponse(ValueError):
    """The module's output is not ``headers, blank line, body``; the message says where."""


def var_text(value: Any) -> str:
    """A Worker var as the string a Wasm module sees: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def base_environ(values: dict[str, Any]) -> dict[bytes, bytes]:
    """A Worker's vars and secrets as environment entries (computed once per Worker)."""
    env: dict[bytes, bytes] = {}
    for key, value in values.items():
        text = var_text(value)
        if "=" in key or "\0" in key or "\0" in text:
            continue  # not representable in an environment; still reachable with var_get
        env[key.encode()] = text.encode("utf-8")
    return env


def split_url(url: str) -> tuple[str, str, str, str]:
    """(host, port, raw path, query) of an absolute URL, without urllib's overhead."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "http", url
    rest = rest.partition("#")[0]
    authority, slash, tail = rest.partition("/")
    path, _, query = ("/" + tail).partition("?") if slash else ("/", "", authority.partition("?")[2])
    authority = authority.partition("?")[0].rpartition("@")[2]
    if authority.startswith("["):  # [::1]:8787
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    return host or "localhost", port or ("443" if scheme == "https" else "80"), path, query


def cgi_environ(method: str, url: str, headers: list[list[str]], body_len: int,
                base: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """RFC 3875 meta-variables plus WAGI's ``X_FULL_URL``/``X_RAW_PATH_INFO``, as bytes.

    ``base`` (the Worker's vars and secrets, see :func:`base_environ`) comes first so that a
    var can never mask a request variable. Repeated headers are joined with ", " as HTTP
    allows.

    Why the two small caches: this runs for every request of a module that reads its
    environment, and the URL parts and header-name conversions repeat from one request
    to the next (a handler's few routes, the same dozen header names).
    """
    env = base.copy()
    env.update(_STATIC_ENV)
    env.update(_url_environ(url))
    env[b"REQUEST_METHOD"] = method.encode("latin-1", "replace")
    env[b"CONTENT_LENGTH"] = str(body_len).encode()
    joined: dict[bytes, bytes] = {}
    for name, value in headers:
        key = _header_key(name)
        if key is _SKIP:
            continue
        raw_value = value.encode("latin-1", "replace")
        if b"\0" in raw_value:
            raw_value = raw_value.replace(b"\0", b"")
        if key is _CONTENT_TYPE:
            env[b"CONTENT_TYPE"] = raw_value
            continue
        if key is _REMOTE:
            env[b"REMOTE_ADDR"] = raw_value
            key = b"HTTP_CF_CONNECTING_IP"
        joined[key] = joined[key] + b", " + raw_value if key in joined else raw_value
    env.update(joined)
    return env


@functools.lru_cache(maxsize=1024)
def _url_environ(url: str) -> dict[bytes, bytes]:
    """The variables that depend on the URL alone (cached: never modify the result)."""
    host, port, raw_path, query = split_url(url)
    raw = raw_path.encode("latin-1", "replace")
    encoded_query = query.encode("latin-1", "replace")
    return {
        b"SERVER_NAME": host.encode("latin-1", "replace"),
        b"SERVER_PORT": port.encode("latin-1", "replace"),
        b"PATH_INFO": unquote(raw_path).encode("utf-8", "replace") if "%" in raw_path else raw,
        b"X_RAW_PATH_INFO": raw,
        b"QUERY_STRING": encoded_query,
        b"REQUEST_URI": raw + b"?" + encoded_query if query else raw,
        b"X_FULL_URL": url.encode("latin-1", "replace"),
    }


#: markers in _HEADER_KEY for headers that are not (only) an HTTP_* variable
_SKIP, _CONTENT_TYPE, _REMOTE = b"content-length", b"content-type", b"cf-connecting-ip"


@functools.lru_cache(maxsize=1024)
def _header_key(name: str) -> bytes:
    """The variable a header becomes, or one of the markers above."""
    lower = name.lower()
    if lower == "content-length":
        key = _SKIP
    elif lower == "content-type":
        key = _CONTENT_TYPE
    elif lower == "cf-connecting-ip":
        key = _REMOTE
    else:
        key = b"HTTP_" + lower.upper().replace("-", "_").encode("latin-1", "replace")
    return key


_STATIC_ENV: dict[bytes, bytes] = {
    b"GATEWAY_INTERFACE": b"CGI/1.1",
    b"SERVER_PROTOCOL": b"HTTP/1.1",
    b"SERVER_SOFTWARE": b"edgelet",
    b"SCRIPT_NAME": b"",
    b"X_MATCHED_ROUTE": b"/...",
    b"REMOTE_ADDR": b"127.0.0.1",
}


def http_request_bytes(method: str, url: str, headers: list[list[str]], body: bytes) -> bytes:
    """The request as an HTTP/1.1 message in absolute form, for reactor modules."""
    lines = [f"{method} {url} HTTP/1.1"]
    lines.extend(f"{k}: {v}" for k, v in headers if k.lower() != "content-length")
    lines.append(f"content-length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1", "replace") + body


def parse_response(out: bytes) -> list[Any]:
    """CGI output -> ``[status, headers, body]``; raise :class:`MalformedResponse` if bad.

    ``Status: 404 Not Found`` sets the status; a ``Location`` without one means 302 (as in
    CGI); lines may end in CRLF or LF.
    """
    if not out:
        raise MalformedResponse("the module wrote nothing to stdout")
    crlf = out.find(b"\r\n\r\n")
    lf = out.find(b"\n\n")
    if out.startswith(b"\r\n"):
        head, body = b"", out[2:]
    elif out.startswith(b"\n"):
        head, body = b"", out[1:]
    elif crlf < 0 and lf < 0:
        shown = out[:60].decode("utf-8", "replace")
        raise MalformedResponse(f"the header block never ends: no blank line after the headers "
                                f"(output starts {shown!r})")
    elif lf < 0 or (0 <= crlf < lf):
        head, body = out[:crlf], out[crlf + 4:]
    else:
        head, body = out[:lf], out[lf + 2:]
    status: int | None = None
    headers: list[list[str]] = []
    location = False
    for n, raw in enumerate(head.split(b"\n") if head else [], 1):
        line = raw.rstrip(b"\r")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            shown = line[:80].decode("utf-8", "replace")
            raise MalformedResponse(f"header line {n} is not 'Name: value': {shown!r}")
        value = value.strip()
        lower = name.lower()
        if lower == b"status":
            m = _STATUS.match(value)
            code = int(m.group(1)) if m else 0
            if not 200 <= code <= 599:
                raise MalformedResponse(f"'Status: {value.decode('latin-1')}' is not an HTTP "
                                        f"status between 200 and 599")
            status = code
            continue
        if lower == b"location":
            location = True
        if b"\r" in value or b"\0" in value:
            raise MalformedResponse(f"header {name.decode('latin-1')!r} contains a control character")
        headers.append([name.decode("latin-1"), value.decode("latin-1")])
    if status is None:
        status = 302 if location else 200
    return [status, headers, body]
