"""The Fetch API's rules that workerd enforces and edgelet's SDK let through, so a Worker
worked locally and threw once deployed (each checked against workerd's src/workerd/api/
http.c++ and the Python SDK's src/pyodide/internal/workers.py):

- ``Response.json(data)`` goes through ``JSON.stringify`` on Cloudflare: NaN and Infinity
  become ``null``. edgelet wrote ``NaN``, which is not JSON (a client's parser refuses it).
- ``Response.redirect("/login")``: workerd parses the URL with no base, so a path is a
  ``TypeError: Unable to parse URL``; edgelet sent it as ``Location``.
- ``Response("x", status=204)`` (or 205, 304): "Response with null body status ...
  cannot have a body"; edgelet sent a body on a 204.
- ``Request(url, method="GE T")``: "Invalid HTTP method string"; ``Request(url, body=...)``
  with GET or HEAD: "Request with a GET or HEAD method cannot have a body".
- ``Headers.getSetCookie()`` (each Set-Cookie apart) was missing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgelet.runtime.http_types import Headers, Request, Response

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from workers import Headers, Request, Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        case = request.url.rsplit("/", 1)[1]
        if case == "json":
            return Response.json({"avg": float("nan"), "max": float("inf"), "n": [1.5, float("-inf")]})
        if case == "redirect":
            return Response.redirect("/login")
        if case == "absolute":
            return Response.redirect("HTTPS://Example.com/a/../login", 301)
        if case == "nobody":
            return Response("deleted", status=204)
        if case == "cookies":
            h = Headers()
            h.append("set-cookie", "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
            h.append("set-cookie", "b=2")
            return Response.json(h.getSetCookie())
        if case == "method":
            Request("https://example.com/", method="GE T")
        if case == "getbody":
            Request("https://example.com/", body="x")
        return Response("fine")
'''


def test_fetch_api_rules_as_a_client_sees_them(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    body = s.get("/json")
    assert body.status_code == 200
    assert body.text == '{"avg":null,"max":null,"n":[1.5,null]}'
    assert json.loads(body.text) == {"avg": None, "max": None, "n": [1.5, None]}  # strict JSON parses
    relative = s.get("/redirect")
    assert relative.status_code == 500 and "location" not in relative.headers
    assert "TypeError: Unable to parse URL: /login" in relative.text
    absolute = s.get("/absolute", follow_redirects=False)
    assert absolute.status_code == 301 and absolute.headers["location"] == "https://example.com/login"
    nobody = s.get("/nobody")
    assert nobody.status_code == 500
    assert "TypeError: Response with null body status (101, 204, 205, or 304) cannot have a body" in nobody.text
    assert s.get("/cookies").json() == ["a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT", "b=2"]
    method = s.get("/method")
    assert method.status_code == 500 and "TypeError: Invalid HTTP method string: 'GE T'" in method.text
    get_body = s.get("/getbody")
    assert get_body.status_code == 500
    assert "TypeError: Request with a GET or HEAD method cannot have a body (GET https://example.com/)" \
        in get_body.text
    assert s.get("/ok").text == "fine"


@pytest.mark.parametrize("status", [204, 205, 304])
def test_null_body_statuses_take_no_body_but_an_empty_one_passes(status: int) -> None:
    with pytest.raises(TypeError, match=r"^Response with null body status"):
        Response(b"x", status=status)
    assert Response(None, status=status).status == status
    assert Response("", status=status)._body == b""  # workerd allows a zero-length body


@pytest.mark.parametrize(("method", "stored"), [("get", "GET"), ("Patch", "PATCH"), ("purge", "PURGE"),
                                                ("PROPFIND", "PROPFIND")])
def test_methods_workerd_knows_are_upper_cased(method: str, stored: str) -> None:
    assert Request("https://example.com/", method=method).method == stored


@pytest.mark.parametrize("method", ["GE T", "FOO", "", "GET\r\n"])
def test_other_methods_are_refused(method: str) -> None:
    with pytest.raises(TypeError, match="^Invalid HTTP method string"):
        Request("https://example.com/", method=method)


def test_a_body_rides_with_a_copied_get_but_not_with_a_new_one() -> None:
    post = Request("https://example.com/", method="POST", body="x")
    assert Request(post, method="POST").method == "POST"
    with pytest.raises(TypeError, match="GET or HEAD method cannot have a body"):
        Request("https://example.com/", method="HEAD", body=b"")
    with pytest.raises(TypeError, match="GET or HEAD method cannot have a body"):
        Request(post, method="GET", body="y")


def test_get_set_cookie_keeps_each_value() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("x", "y"), ("set-cookie", "b=2")])
    assert h.getSetCookie() == h.get_set_cookie() == ["a=1", "b=2"]
    assert h.get("set-cookie") == "a=1, b=2"
    assert Headers().getSetCookie() == []
