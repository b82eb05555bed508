"""A Worker's outgoing ``fetch()`` when it gets no response, and its ``redirect`` option.

Before: the errors were httpx's own (``ConnectError: All connection attempts failed``,
``UnsupportedProtocol``) naming neither the URL nor a fix; and the first fetch's ``redirect``
stuck to the isolate's shared client, so after one ``redirect="manual"`` fetch every later
fetch stopped following redirects (and the other way round)."""

from __future__ import annotations

from typing import Any

from conftest import free_port

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from pyodide.ffi import JsException
from workers import Response, WorkerEntrypoint, fetch


async def outcome(url, **options):
    try:
        resp = await fetch(url, **options)
    except JsException as exc:
        return f"JsException {type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"{resp.status} {resp.headers.get('location') or await resp.text()}"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        scheme, _, host, rest = request.url.split("/", 3)
        base = f"{scheme}//{host}"
        path = rest.split("?")[0]
        if path == "hop":
            return Response.redirect(base + "/target", 302)
        if path == "target":
            return Response("arrived")
        port = request.url.split("?port=")[1]
        return Response.json({
            "manual_first": await outcome(base + "/hop", redirect="manual"),
            "follow_after": await outcome(base + "/hop"),
            "manual_again": await outcome(base + "/hop", redirect="manual"),
            "error": await outcome(base + "/hop", redirect="error"),
            "bad_option": await outcome(base + "/hop", redirect="sometimes"),
            "refused": await outcome(f"http://127.0.0.1:{port}/nothing"),
            "relative": await outcome("/relative/path"),
        })
'''


def test_fetch_errors_name_the_request_and_redirect_is_per_call(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    closed = free_port()
    r = s.get(f"/run?port={closed}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["manual_first"].startswith("302 ") and out["manual_first"].endswith("/target"), out
    assert out["follow_after"] == "200 arrived", out
    assert out["manual_again"].startswith("302 "), out
    assert out["error"].startswith("JsException FetchError: TypeError: fetch GET "), out
    assert "answered 302" in out["error"] and "redirect='error'" in out["error"]
    assert out["bad_option"].startswith("TypeError: fetch(): redirect must be one of"), out
    refused = out["refused"]
    assert refused.startswith(f"JsException FetchError: fetch GET http://127.0.0.1:{closed}/nothing: "), out
    assert "ConnectError" in refused and "that the server is running" in refused
    relative = out["relative"]
    assert relative.startswith("JsException FetchError: TypeError: Fetch API cannot load: '/relative/path'"), out
    assert "absolute http:// or https:// URL" in relative
