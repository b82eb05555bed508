"""What a script written for Cloudflare's Python Workers reads off the SDK, through a real
`edgelet dev` (docs/research/sdk_audit.md lists each item and its source):

- ``request.cf`` of an incoming request is an object with attribute access (``.colo``,
  ``.botManagement.score``); a ``Request`` the Worker builds has ``cf`` None unless given;
- ``request.headers`` reads like the SDK's ``http.client.HTTPMessage``: a missing header is
  None, ``get_content_type()`` / ``get_content_charset()`` / ``get_param()``;
- ``Response(resp)`` wraps a response as the SDK's ``Response(js_response)`` does, and
  refuses options beside it with the SDK's ValueError;
- ``Request(url, redirect="manual")`` given to ``fetch`` is not followed;
- a request body is read once (``OSError("Body already used")``), ``clone()`` first to
  read it twice;
- ``form["missing"]`` is None;
- the JavaScript globals scripts reach through ``js``: TextEncoder/TextDecoder,
  encodeURIComponent, setTimeout, Math, navigator, performance, structuredClone, and more
  of ``pyodide.ffi``'s names (IN_BROWSER, JsArray, can_run_sync).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

TOML = """
    [[workers]]
    name = "parity"
    main = "worker.py"
    compatibility_date = "2026-11-01"
"""

WORKER = '''
    import asyncio
    from urllib.parse import urlparse

    import js
    from pyodide.ffi import IN_BROWSER, JsArray, JsMap, JsPromise, can_run_sync
    from workers import FormData, Request, Response, WorkerEntrypoint, fetch

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            url = urlparse(request.url)
            origin = f"{url.scheme}://{url.netloc}"
            path = url.path
            if path == "/cf":
                cf = request.cf
                return Response.json({
                    "colo": cf.colo, "country": cf["country"], "score": cf.botManagement.score,
                    "tls": cf.tlsVersion, "built": Request("https://example.com/").cf,
                    "given": Request("https://example.com/", cf={"cacheTtl": 5}).cf.cacheTtl,
                })
            if path == "/headers":
                h = request.headers
                return Response.json({
                    "missing": h["x-missing"], "auth": h["Authorization"], "type": h.get_content_type(),
                    "charset": h.get_content_charset(), "format": h.get_param("format"),
                })
            if path == "/upstream":
                return Response("from upstream", status=203, headers={"x-up": "1"})
            if path == "/wrap":
                return Response(await fetch(origin + "/upstream"))
            if path == "/wrap-with-options":
                try:
                    Response(await fetch(origin + "/upstream"), status=201)
                except ValueError as exc:
                    return Response(str(exc), status=400)
            if path == "/bad-headers":
                try:
                    Response("x", headers=5)
                except TypeError as exc:
                    return Response(str(exc), status=400)
            if path == "/hop":
                return Response.redirect(origin + "/upstream", 302)
            if path == "/manual":
                manual = await fetch(Request(origin + "/hop", redirect="manual"))
                followed = await fetch(Request(origin + "/hop"))
                return Response.json({"manual": manual.status, "location": manual.headers.get("location"),
                                      "followed": followed.status})
            if path == "/twice":
                copy = request.clone()
                first = await request.text()
                try:
                    await request.json()
                    second = "read again"
                except OSError as exc:
                    second = str(exc)
                return Response.json({"first": first, "second": second, "used": request.body_used,
                                      "copy": await copy.text()})
            if path == "/form":
                form = await request.form_data()
                return Response.json({"name": form["name"], "missing": form["missing"]})
            if path == "/js":
                data = js.TextEncoder.new().encode("edgelet")
                digest = await js.crypto.subtle.digest("SHA-256", data)
                fired = []
                js.setTimeout(lambda: fired.append("timeout"), 5)
                cancelled = js.setTimeout(lambda: fired.append("cancelled"), 5)
                js.clearTimeout(cancelled)
                start = js.performance.now()
                await asyncio.sleep(0.05)
                original = {"a": [1, 2]}
                clone = js.structuredClone(original)
                clone["a"].append(3)
                return Response.json({
                    "digest": bytes(digest).hex(), "decoded": js.TextDecoder.new().decode(data),
                    "component": js.encodeURIComponent("a b&c/é"), "uri": js.encodeURI("https://x.test/a b?q=1&r=2"),
                    "back": js.decodeURIComponent("a%20b%26c%2F%C3%A9"), "fired": fired,
                    "floor": js.Math.floor(2.7), "round": js.Math.round(-2.5), "ua": js.navigator.userAgent,
                    "elapsed": js.performance.now() - start >= 40, "original": original,
                    "ffi": [IN_BROWSER, isinstance([1], JsArray), isinstance({}, JsMap), can_run_sync()],
                })
            return Response("not found", status=404)
'''


#: the FFI style of Cloudflare's Python examples (written for this test): a sync module-level
#: on_fetch(request), js.Headers.new(dict.items()), JSON.stringify(request.cf, None, 2)
FFI_WORKER = '''
    import json
    from js import JSON, Headers, Response

    def on_fetch(request):
        fallback = json.dumps({"error": "no cf object"})
        data = request.cf if request.cf is not None else fallback
        headers = Headers.new({"content-type": "application/json"}.items())
        return Response.new(JSON.stringify(data, None, 2), headers=headers)
'''


@pytest.fixture(scope="module")
def parity(shared_dev: Any) -> Any:
    return shared_dev({"wrangler_like.toml": TOML, "worker.py": WORKER})


def test_request_cf_is_an_object_with_the_placeholder_values(parity: Any) -> None:
    got = parity.get("/cf").json()
    assert got == {"colo": "DFW", "country": "US", "score": 99, "tls": "TLSv1.3", "built": None, "given": 5}


def test_the_ffi_style_example_shows_the_cf_object(shared_dev: Any) -> None:
    s = shared_dev({"wrangler_like.toml": TOML, "worker.py": FFI_WORKER})
    r = s.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.text.startswith('{\n  "asOrganization": ""')  # indented by JSON.stringify's 2
    assert r.json()["timezone"] == "America/Chicago" and r.json()["tlsClientAuth"]["certVerified"] == "NONE"


def test_headers_read_like_the_sdks_http_message(parity: Any) -> None:
    got = parity.post("/headers", content=b"x", headers={
        "Content-Type": 'Text/Plain; charset="ISO-8859-1"; format=flowed', "Authorization": "Bearer t"}).json()
    assert got == {"missing": None, "auth": "Bearer t", "type": "text/plain", "charset": "iso-8859-1",
                   "format": "flowed"}


def test_response_wraps_a_fetched_response(parity: Any) -> None:
    r = parity.get("/wrap")
    assert r.status_code == 203 and r.text == "from upstream" and r.headers["x-up"] == "1"


def test_response_of_a_response_refuses_options_like_the_sdk(parity: Any) -> None:
    r = parity.get("/wrap-with-options")
    assert r.status_code == 400
    assert r.text.startswith("Expected no options when constructing Response from a js.Response")


def test_bad_headers_argument_is_named(parity: Any) -> None:
    r = parity.get("/bad-headers")
    assert r.status_code == 400 and r.text.startswith("Received unexpected type for headers argument: int")


def test_a_request_with_redirect_manual_is_not_followed(parity: Any) -> None:
    got = parity.get("/manual").json()
    assert got["manual"] == 302 and got["location"].endswith("/upstream") and got["followed"] == 203


def test_a_request_body_is_read_once_as_on_the_sdk(parity: Any) -> None:
    got = parity.post("/twice", content=b'{"a": 1}').json()
    assert got["first"] == '{"a": 1}' and got["copy"] == '{"a": 1}' and got["used"] is True
    assert got["second"].startswith("Body already used: the body of POST ")
    assert "request.clone()" in got["second"]


def test_a_missing_form_field_is_none(parity: Any) -> None:
    assert parity.post("/form", data={"name": "ada"}).json() == {"name": "ada", "missing": None}


def test_javascript_globals_through_js(parity: Any) -> None:
    got = parity.get("/js").json()
    assert got["digest"] == hashlib.sha256(b"edgelet").hexdigest() and got["decoded"] == "edgelet"
    assert got["component"] == "a%20b%26c%2F%C3%A9" and got["uri"] == "https://x.test/a%20b?q=1&r=2"
    assert got["back"] == "a b&c/é" and got["fired"] == ["timeout"]
    assert got["floor"] == 2 and got["round"] == -2 and got["ua"] == "Cloudflare-Workers"
    assert got["elapsed"] is True and got["original"] == {"a": [1, 2]}
    assert got["ffi"] == [False, False, False, True]


def test_uri_and_text_helpers_match_javascript() -> None:
    from edgelet.runtime import jsglobals
    assert jsglobals.decodeURI("a%20b%2Fc%3F") == "a b%2Fc%3F"  # separators stay escaped
    assert jsglobals.encodeURIComponent("!'()*~-_.") == "!'()*~-_."
    with pytest.raises(ValueError, match="URIError"):
        jsglobals.decodeURIComponent("%E0%A4%A")
    assert bytes(jsglobals.TextEncoder().encode("a\ud800")) == b"a\xef\xbf\xbd"
    with pytest.raises(TypeError, match="not valid utf-8"):
        jsglobals.TextDecoder("utf-8", {"fatal": True}).decode(b"\xff")
    assert jsglobals.TextDecoder().decode(b"\xef\xbb\xbfhi") == "hi"


async def test_clone_keeps_what_the_request_carries() -> None:
    from edgelet.runtime.http_types import Request
    get = Request("https://example.com/a", redirect="manual", cf={"cacheTtl": 5})
    copy = get.clone()  # a GET: its empty body must not trip "GET cannot have a body"
    assert (copy.method, copy.url, copy.redirect, copy.cf.cacheTtl) == ("GET", "https://example.com/a", "manual", 5)
    post = Request("https://example.com/a", method="POST", body="x", headers={"x-a": "1"})
    copy = post.clone()
    copy.headers.set("x-a", "2")
    assert await post.text() == "x" and await copy.text() == "x" and post.headers["x-a"] == "1"
    with pytest.raises(OSError, match="Body already used"):
        post.clone()


def test_form_data_missing_key_and_delete() -> None:
    from edgelet.runtime.formdata import FormData
    form = FormData({"a": "1"})
    assert form["b"] is None and form.get("b", "d") == "d"
    del form["b"]  # no error, as the SDK's delete
    assert list(form.items()) == [("a", "1")]
