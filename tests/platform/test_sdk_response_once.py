"""A Response body is read once, as Pyodide's FetchResponse and workerd allow: the second
read raises ``OSError("Response body is already used ...")``, ``clone()`` before reading
gives a second copy, and ``cache.put`` consumes the body it stores. Also the SDK's
``headers.get_all("missing")`` is None (an ``http.client.HTTPMessage`` says so)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgelet.testing import Platform

WORKER = '''
from js import caches
from workers import Response, WorkerEntrypoint


async def attempt(coro):
    try:
        return await coro
    except OSError as exc:
        return "OSError: " + str(exc)
    except TypeError as exc:
        return "TypeError: " + str(exc)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        resp = Response("hello", headers={"x-a": "1"})
        copy = resp.clone()
        out = {"first": await resp.text(), "used": resp.body_used, "second": await attempt(resp.text()),
               "json": await attempt(resp.json()), "copy": await copy.bytes() == b"hello"}
        try:
            resp.clone()
            out["clone"] = "cloned"
        except OSError as exc:
            out["clone"] = "OSError: " + str(exc)
        stored = Response("kept", headers={"cache-control": "max-age=60"})
        await caches.default.put("https://example.com/k", stored)
        out["after_put"] = await attempt(stored.text())
        out["put_used"] = await attempt(caches.default.put("https://example.com/k2", resp))
        hit = await caches.default.match("https://example.com/k")
        out["hit"] = [await hit.text(), await attempt(hit.text())]
        out["missing"] = resp.headers.get_all("x-missing")
        out["present"] = resp.headers.get_all("x-a")
        return Response.json(out)
'''


def test_a_response_body_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "wrangler_like.toml").write_text('name = "once"\nmain = "w.py"\n')
    (tmp_path / "w.py").write_text(WORKER)

    async def main() -> dict:
        async with Platform(str(tmp_path / "wrangler_like.toml")) as p:
            r = await p.fetch("/")
            assert r.status == 200, await r.text()
            return await r.json()

    got = asyncio.run(main())
    assert got["first"] == "hello" and got["used"] is True and got["copy"] is True
    for key in ("second", "json", "clone", "after_put"):
        assert got[key].startswith("OSError: Response body is already used"), (key, got[key])
    assert "resp.clone()" in got["second"]
    assert got["put_used"].startswith("TypeError: cache.put(): the Response's body was already read")
    assert got["hit"][0] == "kept" and got["hit"][1].startswith("OSError: Response body is already used")
    assert got["missing"] is None and got["present"] == ["1"]
