"""Outgoing ``fetch`` from a Worker: real HTTP through one pooled httpx client per isolate."""

from __future__ import annotations

from typing import Any

from edgelet.runtime.http_types import Headers, Request, Response, _body_bytes

_client: Any = None


async def fetch(resource: str | Request, options: dict[str, Any] | None = None, **kwargs: Any) -> Response:
    """``await fetch(url, method=..., headers=..., body=...)`` as in the Fetch API."""
    import httpx
    global _client
    opts = {**(options or {}), **kwargs}
    if isinstance(resource, Request):
        if resource._source is not None:  # a request body still streaming in: read it whole
            await resource._whole()
        req = Request(resource, method=opts.get("method"), headers=opts.get("headers"),
                      body=opts.get("body"))
    else:
        req = Request(str(resource), method=opts.get("method"), headers=opts.get("headers"),
                      body=opts.get("body"))
    if _client is None:
        _client = httpx.AsyncClient(follow_redirects=opts.get("redirect", "follow") == "follow",
                                    timeout=60.0)
    content, _ = _body_bytes(req._body)
    resp = await _client.request(req.method, req.url, headers=req.headers.items(),
                                 content=content or None)
    out = Response(resp.content, status=resp.status_code,
                   headers=Headers([(k, v) for k, v in resp.headers.multi_items()
                                    if k.lower() not in ("content-encoding", "content-length",
                                                         "transfer-encoding")]))
    out.url = str(resp.url)
    return out
