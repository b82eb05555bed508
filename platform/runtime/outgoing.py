"""Outgoing ``fetch`` from a Worker: real HTTP through one pooled httpx client per isolate."""

from __future__ import annotations

from typing import Any

from edgelet.runtime.http_types import Headers, Request, Response, _body_bytes, absolute_url

try:  # inside an isolate the SDK folder is on sys.path: Cloudflare code catches JsException
    from pyodide.ffi import JsException as _Base
except ImportError:  # pragma: no cover - the host process (edgelet.testing)
    _Base = Exception

_client: Any = None
_REDIRECTS = ("follow", "manual", "error")


class FetchError(_Base):
    """A ``fetch()`` that got no response: a URL it cannot load, no connection, a timeout, a
    redirect under ``redirect="error"``. On Cloudflare these are JavaScript ``TypeError``\\ s
    that Python Workers see as ``JsException``; the message names the request and the cause
    (httpx's own, e.g. "All connection attempts failed", named neither)."""


async def fetch(resource: str | Request, options: dict[str, Any] | None = None, **kwargs: Any) -> Response:
    """``await fetch(url, method=..., headers=..., body=..., redirect=...)`` as in the Fetch API."""
    import httpx
    global _client
    opts = {**(options or {}), **kwargs}
    if isinstance(resource, Request):
        if resource._source is not None:  # a request body still streaming in: read it whole
            await resource._whole()
        req = Request(resource, method=opts.get("method"), headers=opts.get("headers"),
                      body=opts.get("body"))
    else:
        try:
            url = absolute_url(resource, "fetch()")
        except TypeError:
            raise FetchError(f"TypeError: Fetch API cannot load: {str(resource)!r} (fetch "
                             f"{opts.get('method') or 'GET'} {resource}): not an absolute URL. Give an absolute "
                             f"http:// or https:// URL (a service binding's fetch takes a path)") from None
        req = Request(url, method=opts.get("method"), headers=opts.get("headers"), body=opts.get("body"))
    redirect = opts.get("redirect", getattr(resource, "redirect", "follow"))
    if redirect not in _REDIRECTS:
        raise TypeError(f"fetch(): redirect must be one of 'follow', 'manual', 'error', got {redirect!r}")
    what = f"fetch {req.method} {req.url}"
    if _client is None:
        # redirects are decided per request (a client-wide choice would stick to the first call's)
        _client = httpx.AsyncClient(follow_redirects=False, timeout=60.0)
    content, _ = _body_bytes(req._body)
    try:
        resp = await _client.request(req.method, req.url, headers=req.headers.items(),
                                     content=content or None, follow_redirects=redirect == "follow")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FetchError(f"TypeError: Fetch API cannot load: {req.url!r} ({what}): {exc} Give an "
                         f"absolute http:// or https:// URL (a service binding's fetch takes a path)") from None
    except httpx.TimeoutException as exc:
        raise FetchError(f"{what}: no answer within 60 s ({type(exc).__name__}); check that the "
                         f"server is up and answering") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{what}: {exc or type(exc).__name__} ({type(exc).__name__}); check the host "
                         f"and port, and that the server is running") from None
    if redirect == "error" and resp.is_redirect:
        raise FetchError(f"TypeError: {what}: the server answered {resp.status_code} to "
                         f"{resp.headers.get('location')!r} and redirect='error' was given")
    # a 204/205/304 has no body (a server that sent one anyway is ignored, as workerd's fetch does)
    status = resp.status_code
    out = Response(None if status in (204, 205, 304) else resp.content,
                   status=status if 200 <= status <= 599 else 200,
                   headers=Headers([(k, v) for k, v in resp.headers.multi_items()
                                    if k.lower() not in ("content-encoding", "content-length",
                                                         "transfer-encoding")]))
    # only a Response the Worker builds is held to 200-599: an upstream's 999 (LinkedIn's
    # answer to bots) reaches the Worker as sent, as through Cloudflare's fetch
    out.status = status
    out.url = str(resp.url)
    return out
