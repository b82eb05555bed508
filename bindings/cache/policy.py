"""The Cache API's rules as pure functions: what ``put`` refuses, what it stores and for how
long, and what ``match`` answers (a HIT, a 304, a 206 or a 416).

Sources: Cloudflare's Cache API page (developers.cloudflare.com/workers/runtime-apis/cache)
and Miniflare's cache worker (workers-sdk, packages/miniflare/src/workers/cache). Where they
differ, Cloudflare's documented behaviour wins: a response with no Cache-Control or Expires
gets Cloudflare's default edge TTL for its status (Miniflare stores it already expired).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass

#: Cloudflare's edge TTL when a response names none (docs: "Edge TTL", default cache behavior)
DEFAULT_EDGE_TTL_S: dict[int, int] = {200: 7200, 206: 7200, 301: 7200, 302: 1200, 303: 1200,
                                      404: 180, 410: 180}

_DIRECTIVE = re.compile(r'\s*([^=,\s]+)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')


def cache_control(value: str | None) -> dict[str, str]:
    """Directive name (lowercase) -> value without quotes ("" when it has none)."""
    out: dict[str, str] = {}
    for name, val in _DIRECTIVE.findall(value or ""):
        out.setdefault(name.lower(), (val or "").strip().strip('"'))
    return out


def put_refusal(method: str, status: int, headers: list[list[str]]) -> str | None:
    """Why ``cache.put`` rejects this request/response with a TypeError, or None (workerd
    and the Service Worker spec: only GET, never a 206, never ``Vary: *``)."""
    if method != "GET":
        return (f"Cannot cache response to non-GET request (method {method}); cache GET requests "
                f"only, or key the entry by a GET Request/URL")
    if status == 206:
        return ("Cannot cache response to a range request (206 Partial Content); put the whole "
                "200 response, match() answers ranges from it")
    for name, value in headers:
        if name.lower() == "vary" and any(v.strip() == "*" for v in value.split(",")):
            return "Cannot cache response with 'Vary: *' header; remove it or name the headers it varies on"
    return None


@dataclass(frozen=True)
class Decision:
    """What ``put`` does with a response: store it (with these headers) for ``ttl`` seconds,
    or not at all (``ttl`` None) and why."""

    ttl: float | None
    headers: list[list[str]]
    reason: str = ""


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def decide(status: int, headers: list[list[str]], now: float) -> Decision:
    """Cloudflare's storage rules for a response given to ``cache.put``."""
    lower = {name.lower(): value for name, value in headers}
    cc = cache_control(lower.get("cache-control"))
    if "set-cookie" in lower:
        if cc.get("private", "").lower() != "set-cookie":
            return Decision(None, headers, "it has a Set-Cookie header (add Cache-Control: "
                                           "private=Set-Cookie to store it without the cookie)")
        headers = [[n, v] for n, v in headers if n.lower() != "set-cookie"]
        cc.pop("private")
    for directive in ("no-store", "no-cache", "private"):
        if directive in cc:
            return Decision(None, headers, f"Cache-Control: {directive}")
    ttl: float | None = None
    for directive in ("s-maxage", "max-age"):
        if directive in cc:
            ttl = _int(cc[directive])
            break
    if ttl is None and "expires" in lower:
        try:
            expires = email.utils.parsedate_to_datetime(lower["expires"]).timestamp()
        except (TypeError, ValueError, IndexError):
            expires = 0.0  # an invalid date means "already expired" (RFC 9111 5.3)
        ttl = expires - now
    if ttl is None:
        ttl = DEFAULT_EDGE_TTL_S.get(status, 0)
        if not ttl:
            return Decision(None, headers, f"status {status} has no default edge TTL; give it a "
                                           "Cache-Control: max-age")
    if ttl <= 0:
        return Decision(None, headers, "it is already expired (max-age=0 or Expires in the past)")
    return Decision(ttl, headers)


def _etag(value: str) -> str | None:
    m = re.fullmatch(r'\s*(?:W/)?"(.+)"\s*', value)
    return m.group(1) if m else None


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _range(value: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) of a single ``bytes=`` range, None when the header is to be ignored
    (not bytes, several ranges, malformed), False when it cannot be satisfied."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    if not first_s:  # suffix: the last N bytes
        n = _int(last_s)
        if n is None or n < 0:
            return None
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    first = _int(first_s)
    last = _int(last_s) if last_s else size - 1
    if first is None or last is None or first < 0 or (last_s and last < first):
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


def match_answer(status: int, headers: list[list[str]], body: bytes,
                 request_headers: dict[str, str]) -> tuple[int, list[list[str]], bytes]:
    """What ``cache.match`` returns for a stored response: ``cf-cache-status: HIT`` added,
    304 for a matching If-None-Match / If-Modified-Since, 206 (or 416) for a Range."""
    out = [[n, v] for n, v in headers if n.lower() not in ("cf-cache-status", "content-length")]
    out.append(["cf-cache-status", "HIT"])
    lower = {n.lower(): v for n, v in headers}
    inm = request_headers.get("if-none-match")
    etag = _etag(lower.get("etag", ""))
    if inm is not None and etag is not None:
        if inm.strip() == "*" or any(_etag(t) == etag for t in inm.split(",")):
            return 304, out, b""
    since = _date(request_headers.get("if-modified-since"))
    modified = _date(lower.get("last-modified"))
    if since is not None and modified is not None and modified <= since:
        return 304, out, b""
    rng = request_headers.get("range")
    if rng is not None:
        size = len(body)
        span = _range(rng, size)
        if span is False:
            return 416, [["content-range", f"bytes */{size}"], ["cf-cache-status", "HIT"]], b""
        if isinstance(span, tuple):
            first, last = span
            out.append(["content-range", f"bytes {first}-{last}/{size}"])
            return 206, out, body[first:last + 1]
    return status, out, body
