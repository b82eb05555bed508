"""edgelet.testing: in-process platform, fetch, virtual time, teardown, bad input."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest

from edgelet.config import ConfigError
from edgelet.testing import Platform


def app(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "wrangler_like.toml"


BASIC = {
    "wrangler_like.toml": """
        [[workers]]
        name = "web"
        main = "web.py"
        triggers = { crons = ["0 * * * *"] }
        assets = { directory = "public" }

        [[workers]]
        name = "other"
        main = "other.py"
    """,
    "web.py": """
        import os
        from workers import Response, WorkerEntrypoint

        RUNS = []

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/pid"):
                    return Response(str(os.getpid()))
                if request.url.endswith("/runs"):
                    return Response.json(RUNS)
                return Response.json({"method": request.method, "body": await request.text()})

            async def scheduled(self, controller):
                RUNS.append(controller.scheduledTime)
    """,
    "other.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self):
                return Response("other")
    """,
    "public/hello.txt": "static hello\n",
}


async def test_fetch_primary_other_worker_and_assets(tmp_path):
    async with Platform(app(tmp_path, BASIC)) as p:
        resp = await p.fetch("/echo", method="POST", body="payload")
        assert resp.status == 200
        assert await resp.json() == {"method": "POST", "body": "payload"}
        assert await (await p.fetch("/", worker="other")).text() == "other"
        static = await p.fetch("/hello.txt")
        assert await static.text() == "static hello\n"
        assert static.headers["content-type"].startswith("text/plain")
        assert p.url is None  # no TCP port unless asked


async def test_crons_fire_on_virtual_time_in_order(tmp_path):
    async with Platform(app(tmp_path, BASIC), clock="virtual") as p:
        start = p.now
        await p.advance("3 hours")
        runs = await (await p.fetch("/runs")).json()
        assert len(runs) == 3
        assert runs == sorted(runs)
        assert all(r % 3_600_000 == 0 for r in runs)
        assert p.now == pytest.approx(start + 3 * 3600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_teardown_leaves_no_processes_even_on_failure(tmp_path):
    pids = []
    with pytest.raises(RuntimeError, match="test failed"):
        async with Platform(app(tmp_path, BASIC)) as p:
            pids.append(int(await (await p.fetch("/pid")).text()))
            raise RuntimeError("test failed")
    for pid in pids:  # gone (not a zombie either: killed and reaped), within seconds
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_port_serves_real_http_when_asked(tmp_path):
    import httpx
    async with Platform(app(tmp_path, BASIC), port=0) as p:
        async with httpx.AsyncClient() as client:
            r = await client.post(p.url + "/x", content=b"hi")
        assert r.json() == {"method": "POST", "body": "hi"}


async def test_bad_durations(tmp_path):
    async with Platform(app(tmp_path, BASIC), clock="virtual") as p:
        with pytest.raises(ValueError, match="backwards"):
            await p.advance("-5 minutes")
        with pytest.raises(ValueError, match="cannot read"):
            await p.advance("soon")
        with pytest.raises(ValueError, match="backwards"):
            await p.advance(-1)


async def test_invalid_config_raises_at_enter_with_config_message(tmp_path):
    files = dict(BASIC)
    files["wrangler_like.toml"] = BASIC["wrangler_like.toml"].replace('main = "other.py"', 'main = "missing.py"')
    with pytest.raises(ConfigError, match="missing.py"):
        async with Platform(app(tmp_path, files)):
            pass


async def test_advance_needs_virtual_clock_and_valid_options(tmp_path):
    with pytest.raises(ValueError, match="clock"):
        Platform(app(tmp_path, BASIC), clock="fake")
    async with Platform(app(tmp_path, BASIC)) as p:
        with pytest.raises(RuntimeError, match="virtual"):
            await p.advance("1 second")


async def test_forgetting_to_await_warns_instead_of_hanging(tmp_path):
    async with Platform(app(tmp_path, BASIC), clock="virtual") as p:
        with pytest.warns(RuntimeWarning, match="never awaited"):
            p.advance("1 hour")  # no await: Python warns when the coroutine is collected
            import gc
            gc.collect()
        assert len(await (await p.fetch("/runs")).json()) == 0


async def test_config_as_a_dict_and_persisted_state(tmp_path):
    (tmp_path / "w.py").write_text(textwrap.dedent("""
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.method == "PUT":
                    await self.env.KV.put("k", await request.text())
                return Response(str(await self.env.KV.get("k")))
    """))
    config = {"name": "d", "main": "w.py", "kv_namespaces": [{"binding": "KV", "id": "kv"}]}
    state = tmp_path / "state"
    async with Platform(config, persist=state, base_dir=tmp_path) as p:
        assert await (await p.fetch("/", method="PUT", body="kept")).text() == "kept"
    async with Platform(config, persist=state, base_dir=tmp_path) as p:
        assert await (await p.fetch("/")).text() == "kept"
    async with Platform(config, base_dir=tmp_path) as p:  # in memory: a fresh start
        assert await (await p.fetch("/")).text() == "None"
