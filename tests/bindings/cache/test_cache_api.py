"""The Cache API (``from js import caches``) through a real Worker: workerd's put/match/delete
rules, expiry on the platform clock (virtual time in the testing API), and the store in the
state folder (kept across a restart of ``edgelet dev``, gone with ``--in-memory``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgelet.testing import Platform

#: the Worker the tests drive: one route per operation, parameters in the query
WORKER = '''
from urllib.parse import parse_qs, urlparse

from js import caches
from workers import Request, Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        cache = await caches.open(q["cache"]) if "cache" in q else caches.default
        key_url = "https://example.com/" + q.get("key", "k")
        headers = {}
        for name in ("range", "if-none-match"):
            if name in q:
                headers[name] = q[name]
        key = Request(key_url, method=q.get("method", "GET"), headers=headers)
        options = {"ignoreMethod": True} if "ignore" in q else None
        if url.path == "/put":
            h = {"content-type": "text/plain"}
            for name in ("cache-control", "set-cookie", "vary", "expires", "etag"):
                if name in q:
                    h[name] = q[name]
            value = Response("body of " + q.get("key", "k"), status=int(q.get("status", "200")), headers=h)
            try:
                await cache.put(key if "method" in q else key_url, value)
            except TypeError as exc:
                return Response("TypeError: " + str(exc), status=400)
            return Response("put")
        if url.path == "/match":
            hit = await cache.match(key, options)
            return hit if hit is not None else Response("miss", status=404)
        if url.path == "/delete":
            return Response(str(await cache.delete(key, options)))
        return Response("no route", status=404)
'''

FILES = {"wrangler_like.toml": 'name = "cachew"\nmain = "w.py"\n', "w.py": WORKER}


def _app(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path / "wrangler_like.toml"


def run(tmp_path: Path, body: Callable[[Platform], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Platform(str(_app(tmp_path)), clock="virtual") as p:
            await body(p)
    asyncio.run(main())


async def text(p: Platform, path: str, **kw: Any) -> tuple[int, str, Any]:
    r = await p.fetch(path, **kw)
    return r.status, await r.text(), r.headers


def test_put_then_match_is_a_hit_until_max_age_passes(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        assert (await text(p, "/match?key=a"))[:2] == (404, "miss")
        assert (await text(p, "/put?key=a&cache-control=max-age%3D60"))[:2] == (200, "put")
        status, got, headers = await text(p, "/match?key=a")
        assert (status, got) == (200, "body of a")
        assert headers.get("cf-cache-status") == "HIT"
        assert headers.get("cache-control") == "max-age=60"
        await p.advance("59s")
        assert (await text(p, "/match?key=a"))[0] == 200
        await p.advance("2s")
        assert (await text(p, "/match?key=a"))[:2] == (404, "miss")
    run(tmp_path, body)


def test_s_maxage_wins_over_max_age_and_expires_is_read(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        await p.fetch("/put?key=s&cache-control=max-age%3D1000,%20s-maxage%3D10")
        await p.fetch("/put?key=e&expires=Wed,%2021%20Oct%202099%2007:28:00%20GMT")
        await p.fetch("/put?key=old&expires=Wed,%2021%20Oct%202015%2007:28:00%20GMT")
        await p.fetch("/put?key=d")  # no directive: Cloudflare's default edge TTL for a 200 (2 h)
        await p.fetch("/put?key=500&status=500")  # no default TTL for a 500: not stored
        assert (await text(p, "/match?key=old"))[0] == 404
        assert (await text(p, "/match?key=500"))[0] == 404
        await p.advance("11s")
        assert (await text(p, "/match?key=s"))[0] == 404
        assert (await text(p, "/match?key=e"))[0] == 200
        assert (await text(p, "/match?key=d"))[0] == 200
        await p.advance("2h")
        assert (await text(p, "/match?key=d"))[0] == 404
        assert (await text(p, "/match?key=e"))[0] == 200
    run(tmp_path, body)


def test_put_refuses_non_get_206_and_vary_star_with_a_type_error(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        status, got, _ = await text(p, "/put?key=p&method=POST&cache-control=max-age%3D60")
        assert status == 400 and "non-GET request (method POST)" in got
        status, got, _ = await text(p, "/put?key=r&status=206&cache-control=max-age%3D60")
        assert status == 400 and "206 Partial Content" in got
        status, got, _ = await text(p, "/put?key=v&vary=Accept,%20*&cache-control=max-age%3D60")
        assert status == 400 and "Vary: *" in got
        for key in ("p", "r", "v"):
            assert (await text(p, f"/match?key={key}&method=GET"))[0] == 404
    run(tmp_path, body)


def test_no_store_private_and_set_cookie_are_not_stored_but_private_set_cookie_is(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        assert (await text(p, "/put?key=ns&cache-control=no-store"))[:2] == (200, "put")
        await p.fetch("/put?key=pv&cache-control=private,%20max-age%3D60")
        await p.fetch("/put?key=sc&cache-control=max-age%3D60&set-cookie=a%3D1")
        await p.fetch("/put?key=ok&cache-control=private%3DSet-Cookie,%20max-age%3D60&set-cookie=a%3D1")
        for key in ("ns", "pv", "sc"):
            assert (await text(p, f"/match?key={key}"))[0] == 404, key
        status, got, headers = await text(p, "/match?key=ok")
        assert (status, got) == (200, "body of ok")
        assert headers.get("set-cookie") is None  # stored without the cookie
    run(tmp_path, body)


def test_match_and_delete_ignore_other_methods_unless_ignore_method(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        await p.fetch("/put?key=m&cache-control=max-age%3D60")
        assert (await text(p, "/match?key=m&method=POST"))[0] == 404
        assert (await text(p, "/match?key=m&method=POST&ignore=1"))[:2] == (200, "body of m")
        assert (await text(p, "/delete?key=m&method=POST"))[1] == "False"
        assert (await text(p, "/delete?key=m&method=POST&ignore=1"))[1] == "True"
        assert (await text(p, "/delete?key=m"))[1] == "False"  # already gone
        assert (await text(p, "/match?key=m"))[0] == 404
    run(tmp_path, body)


def test_range_and_if_none_match_on_match(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        await p.fetch("/put?key=rg&cache-control=max-age%3D60&etag=%22v1%22")  # "body of rg"
        status, got, headers = await text(p, "/match?key=rg&range=bytes%3D0-3")
        assert (status, got) == (206, "body")
        assert headers.get("content-range") == "bytes 0-3/10"
        status, got, _ = await text(p, "/match?key=rg&range=bytes%3D-2")
        assert (status, got) == (206, "rg")
        status, _, headers = await text(p, "/match?key=rg&range=bytes%3D50-")
        assert status == 416 and headers.get("content-range") == "bytes */10"
        status, got, _ = await text(p, "/match?key=rg&if-none-match=%22v1%22")
        assert (status, got) == (304, "")
        assert (await text(p, "/match?key=rg&if-none-match=%22v2%22"))[0] == 200
    run(tmp_path, body)


def test_named_caches_are_separate_from_the_default_and_each_other(tmp_path: Path) -> None:
    async def body(p: Platform) -> None:
        await p.fetch("/put?key=n&cache=one&cache-control=max-age%3D60")
        assert (await text(p, "/match?key=n&cache=one"))[0] == 200
        assert (await text(p, "/match?key=n&cache=two"))[0] == 404
        assert (await text(p, "/match?key=n"))[0] == 404
        assert (await text(p, "/delete?key=n&cache=one"))[1] == "True"
    run(tmp_path, body)


def test_open_refuses_the_reserved_name_and_overlong_names(tmp_path: Path) -> None:
    (tmp_path / "wrangler_like.toml").write_text('name = "names"\nmain = "w.py"\n')
    (tmp_path / "w.py").write_text(
        "from js import caches\nfrom workers import Response, WorkerEntrypoint\n"
        "class Default(WorkerEntrypoint):\n"
        "    async def fetch(self, request):\n"
        "        out = []\n"
        "        for name in ('default', 'x' * 1025, 'x' * 1024):\n"
        "            try:\n"
        "                await caches.open(name)\n"
        "                out.append('ok')\n"
        "            except TypeError as exc:\n"
        "                out.append(str(exc))\n"
        "        return Response.json(out)\n")

    async def main() -> None:
        async with Platform(str(tmp_path / "wrangler_like.toml")) as p:
            reserved, long, ok = await (await p.fetch("/")).json()
            assert '"default" is reserved; use caches.default' in reserved
            assert "1025 characters; use at most 1024" in long
            assert ok == "ok"
    asyncio.run(main())


def test_a_relative_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "wrangler_like.toml").write_text('name = "rel"\nmain = "w.py"\n')
    (tmp_path / "w.py").write_text(
        "from js import caches\nfrom workers import Response, WorkerEntrypoint\n"
        "class Default(WorkerEntrypoint):\n"
        "    async def fetch(self, request):\n"
        "        try:\n"
        "            await caches.default.match('/relative')\n"
        "        except TypeError as exc:\n"
        "            return Response(str(exc))\n"
        "        return Response('accepted')\n")

    async def main() -> None:
        async with Platform(str(tmp_path / "wrangler_like.toml")) as p:
            got = await (await p.fetch("/")).text()
            assert "cache.match()" in got and "'/relative' is not an absolute URL" in got
    asyncio.run(main())


def test_the_cache_survives_a_restart_of_dev_and_in_memory_keeps_nothing(dev: Any) -> None:
    s = dev(FILES)
    assert s.get("/put?key=keep&cache-control=max-age%3D3600").text == "put"
    assert s.get("/match?key=keep").headers.get("cf-cache-status") == "HIT"
    assert (s.cwd / ".edgelet" / "state" / "cache.sqlite3").exists()
    s.kill()
    again = dev(None, cwd=s.cwd)
    r = again.get("/match?key=keep")
    assert (r.status_code, r.text) == (200, "body of keep")
    again.stop()
    mem = dev(None, "--in-memory", cwd=s.cwd)
    assert mem.get("/put?key=m&cache-control=max-age%3D3600").text == "put"
    assert mem.get("/match?key=m").status_code == 200
    mem.stop()
    back = dev(None, cwd=s.cwd)
    assert back.get("/match?key=m").status_code == 404  # never written to the folder


@pytest.mark.parametrize("path", ["/match?key=x", "/delete?key=x"])
def test_a_miss_on_a_fresh_platform(tmp_path: Path, path: str) -> None:
    async def body(p: Platform) -> None:
        status, got, _ = await text(p, path)
        assert (status, got) == ((404, "miss") if "match" in path else (200, "False"))
    run(tmp_path, body)
