"""Text with a lone surrogate (``json.loads('"\\ud800"')``, bytes decoded with
``surrogateescape``) cannot cross the host <-> isolate channel as it is (msgpack carries
valid UTF-8 only). A Worker's print() must still work, its exception still reach the log
and the client as a 500, and an answer the channel cannot carry must be a 500 naming the
Worker, not uvicorn's bare "Internal Server Error" (review 5, item 12)."""

from __future__ import annotations

import httpx
import pytest

TOML = 'name = "app"\nmain = "app.py"\n'
APP = r'''
import json
from workers import Response, WorkerEntrypoint
BAD = json.loads('"x\\ud800y"')

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/print"):
            print("user said", BAD)
            return Response("printed")
        if request.url.endswith("/raise"):
            raise ValueError("bad input " + BAD)
        if request.url.endswith("/header"):
            return Response("ok", headers={"x-a": BAD})
        return Response("ok")
'''


@pytest.mark.parametrize("handoff,header_error", [
    ("0", "Worker 'app' failed to answer fetch: UnicodeEncodeError"),  # the channel refuses it
    ("1", "Worker 'app' answered GET /header with header 'x-a'"),  # the isolate writes it
], ids=["host-served", "isolate-served"])
def test_lone_surrogates_in_logs_errors_and_headers(dev, monkeypatch, handoff, header_error):
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", handoff)
    s = dev({"wrangler_like.toml": TOML, "app.py": APP})
    printed = httpx.get(s.url + "/print", timeout=30)
    assert (printed.status_code, printed.text) == (200, "printed")

    raised = httpx.get(s.url + "/raise", timeout=30)
    assert raised.status_code == 500
    assert "ValueError: bad input x\\ud800y" in raised.text

    header = httpx.get(s.url + "/header", timeout=30)
    assert header.status_code == 500
    assert header_error in header.text

    assert httpx.get(s.url + "/", timeout=30).text == "ok"  # the isolate is fine
    logs = s.logs()
    assert "user said x\\ud800y" in logs  # the escape shows what was printed
    assert "Uncaught exception in fetch GET" in logs and "ValueError: bad input x\\ud800y" in logs
    assert header_error in logs
    assert "Exception in ASGI application" not in logs


@pytest.mark.parametrize("handoff", ["1", "0"], ids=["isolate-served", "host-served"])
def test_a_header_value_beyond_latin1_is_a_500_naming_the_worker_and_header(dev, monkeypatch, handoff):
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", handoff)
    s = dev({"wrangler_like.toml": TOML, "app.py": '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/stream"):
            async def body():
                yield b"never sent"
            return Response(body(), headers={"x-price": "10 \\u20ac"})
        return Response("ok", headers={"x-price": "10 \\u20ac"})
'''})
    for path in ("/", "/stream"):
        r = httpx.get(s.url + path, timeout=30)
        assert r.status_code == 500, (path, r.text)
        assert "Worker 'app' answered GET " + path + " with header 'x-price'" in r.text
        assert "percent-encode" in r.text
    logs = s.logs()
    assert "with header 'x-price': '10 \u20ac', which is not Latin-1 text" in logs
    assert "Exception in ASGI application" not in logs
