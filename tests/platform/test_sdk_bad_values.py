"""Values a Worker may hand the SDK that no HTTP message can carry. Before: a header name with a
space or a value with CR/LF reached the server, which dropped the connection (the client saw an
empty reply, the log an ASGI traceback naming neither Worker nor header), and a CRLF value was
a header injection; ``Response(5)`` sent the byte 0x05. Now each is a ``TypeError`` where the
Worker sets it, as the Fetch API's ``Headers`` raises on Cloudflare, so the client gets the
usual 500 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from edgelet.runtime.http_types import Headers, Request, Response

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        case = request.url.rsplit("/", 1)[1]
        if case == "name":
            return Response("x", headers={"bad name": "v"})
        if case == "crlf":
            return Response("x", headers={"x-note": "a\r\nset-cookie: session=stolen"})
        if case == "int":
            return Response(5)
        return Response("fine", headers={"x-ok": "1"})
'''


def test_bad_headers_and_bodies_are_a_500_that_names_them(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    name = s.get("/name")
    assert name.status_code == 500, name.text
    assert name.text.startswith("Worker threw an exception: TypeError: Invalid header name 'bad name'")
    crlf = s.get("/crlf")
    assert crlf.status_code == 500 and "set-cookie" not in crlf.headers
    assert crlf.text.startswith("Worker threw an exception: TypeError: Invalid header value for 'x-note'")
    number = s.get("/int")
    assert number.status_code == 500
    assert "TypeError: cannot use a int (5) as a body; pass str(5)" in number.text
    ok = s.get("/ok")  # the server goes on serving
    assert ok.status_code == 200 and ok.text == "fine" and ok.headers["x-ok"] == "1"


@pytest.mark.parametrize("name", ["bad name", "x:y", "", "é", "a\nb"])
def test_header_names_must_be_tokens(name: str) -> None:
    h = Headers()
    for setter in (h.append, h.set):
        with pytest.raises(TypeError, match="Invalid header name"):
            setter(name, "v")
    with pytest.raises(TypeError, match="Invalid header name"):
        Headers({name: "v"})
    assert list(h.items()) == []


@pytest.mark.parametrize("value", ["a\r\nb: c", "a\nb", "a\rb", "a\0b"])
def test_header_values_hold_no_line_breaks(value: str) -> None:
    h = Headers({"x-a": "kept"})
    for setter in (h.append, h.set):
        with pytest.raises(TypeError, match="Invalid header value for 'x-a'"):
            setter("X-A", value)
    assert h.get("x-a") == "kept"  # a refused set() leaves the old value
    with pytest.raises(TypeError, match="Invalid header value"):
        Response("x", headers=[("x-a", value)])


def test_valid_headers_still_pass() -> None:
    h = Headers([("Content-Type", "text/plain; charset=utf-8"), (b"X-Bytes", b"\xe9t\xe9")])
    h.append("set-cookie", "a=1; Path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT")
    h.set("x-tab", "a\tb")  # a tab inside a value is allowed (RFC 9110 field-vchar / HTAB)
    assert h.get("content-type") == "text/plain; charset=utf-8" and h.get("x-bytes") == "\xe9t\xe9"
    assert h.get("x-tab") == "a\tb"


def test_a_pair_that_is_no_pair_is_named() -> None:
    with pytest.raises(TypeError, match=r"Headers\(\): expected \[name, value\] pairs, got \['a'\]"):
        Headers([["a"]])
    with pytest.raises(TypeError, match="expected \\[name, value\\] pairs, got 'ab'"):
        Headers(["ab"])


@pytest.mark.parametrize("body", [5, 0, True, 1.5])
def test_numbers_are_no_body(body: Any) -> None:
    with pytest.raises(TypeError, match=f"cannot use a {type(body).__name__}"):
        Response(body)
    with pytest.raises(TypeError, match="as a body"):
        Request("http://example.com/", method="POST", body=body)
