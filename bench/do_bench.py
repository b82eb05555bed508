"""Durable Objects: RPC calls/s, storage ops/s inside an object, memory of many objects.

    python bench/do_bench.py [--seconds 5] [--connections 32] [--objects 10000]

1. HTTP -> Worker -> object RPC (``bench/apps/do``: ``/one`` hits one object, ``/many`` one
   of 1,000), with wrk when installed, else httpx async clients.
2. The host-side handle (no HTTP): RPC calls/s to one object and spread over 1,000, from
   64 concurrent callers (one object serialises its calls: that is its input gate).
3. Storage inside one object: ``put``/``get`` of a 100-byte value, and ``sql.exec``
   insert/select, counted inside the object (no RPC in the loop), on disk (WAL).
4. RSS of the platform (host + isolates) after touching N objects once (each writes one
   key, so each has its own SQLite file), then after they are evicted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Dev, tree_rss_mb, wrk  # noqa: E402

APP = {
    "wrangler_like.toml": """
        name = "dobench"
        main = "app.py"
        compatibility_date = "2026-11-01"
        durable_objects.bindings = [{ name = "OBJ", class_name = "Obj" }]
    """,
    "app.py": """
        import time
        from workers import DurableObject, Response, WorkerEntrypoint

        class Obj(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.n = 0

            async def hit(self):
                self.n += 1
                return self.n

            async def touch(self):
                await self.ctx.storage.put("touched", True)

            async def kv_loop(self, seconds):
                s = self.ctx.storage
                value = "v" * 100
                out = {}
                for op in ("put", "get"):
                    n, deadline = 0, time.perf_counter() + seconds
                    while time.perf_counter() < deadline:
                        for _ in range(100):
                            key = f"k{n % 10000}"
                            if op == "put":
                                await s.put(key, value)
                            else:
                                await s.get(key)
                            n += 1
                    out[op] = n / seconds
                return out

            def sql_loop(self, seconds):
                sql = self.ctx.storage.sql
                sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
                out = {}
                for op in ("insert", "select"):
                    n, deadline = 0, time.perf_counter() + seconds
                    while time.perf_counter() < deadline:
                        for _ in range(100):
                            if op == "insert":
                                sql.exec("INSERT INTO t (v) VALUES (?)", "v" * 100)
                            else:
                                sql.exec("SELECT v FROM t WHERE id = ?", n % 1000 + 1).toArray()
                            n += 1
                    out[op] = n / seconds
                return out

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """,
}


def _run(coro: Any) -> Any:
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


async def _httpx(url: str, seconds: float, connections: int) -> float:
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30)
               for _ in range(connections)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if (await client.get(url)).status_code == 200:
                done += 1

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    return done / (time.perf_counter() - t0)


def bench_http(seconds: float, connections: int) -> None:
    with tempfile.TemporaryDirectory() as state:
        dev = Dev(ROOT / "bench" / "apps" / "do", "--persist-to", state)
        try:
            for path in ("/one", "/many"):
                url = dev.url + path
                _run(_httpx(url, 1.0, connections))  # warm-up: isolates, objects
                if shutil.which("wrk"):
                    r = wrk(url, connections=connections, seconds=int(seconds))
                    print(f"HTTP -> Worker -> object RPC {path} (wrk, {connections} conns): "
                          f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
                else:
                    rate = _run(_httpx(url, seconds, connections))
                    print(f"HTTP -> Worker -> object RPC {path} (httpx, {connections} conns): "
                          f"{rate:,.0f} req/s")
        finally:
            dev.stop()


async def bench_in_process(seconds: float, objects: int) -> None:
    from edgelet.config import load_config
    from edgelet.host import Host

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "app"
        folder.mkdir()
        for name, text in APP.items():
            (folder / name).write_text(textwrap.dedent(text).lstrip())
        host = Host(load_config(cwd=folder), state_dir=Path(tmp) / "state")
        await host.start()
        try:
            ns = host.plugin("durable_objects").namespace_handle("dobench", "OBJ")

            async def rpc_rate(names: list[str], callers: int) -> float:
                stubs = [ns.getByName(n) for n in names]
                for stub in stubs[:1000]:
                    await stub.hit()  # build the instances first
                done = 0
                deadline = time.perf_counter() + seconds

                async def caller(i: int) -> None:
                    nonlocal done
                    k = i
                    while time.perf_counter() < deadline:
                        await stubs[k % len(stubs)].hit()
                        k += callers
                        done += 1

                t0 = time.perf_counter()
                await asyncio.gather(*(caller(i) for i in range(callers)))
                return done / (time.perf_counter() - t0)

            one = await rpc_rate(["one"], 64)
            print(f"host handle RPC to one object (64 callers): {one:,.0f} calls/s")
            many = await rpc_rate([f"o{i}" for i in range(1000)], 64)
            print(f"host handle RPC over 1,000 objects (64 callers): {many:,.0f} calls/s")
            single = await rpc_rate(["one"], 1)
            print(f"host handle RPC to one object (1 caller, round trip): {single:,.0f} calls/s "
                  f"= {1e6 / single:.0f} µs per call")

            kv = await ns.getByName("storage").kv_loop(min(seconds, 3))
            print(f"storage inside an object (on disk, WAL, each write committed): "
                  f"put {kv['put']:,.0f} ops/s, get {kv['get']:,.0f} ops/s")
            sql = await ns.getByName("sql").sql_loop(min(seconds, 3))
            print(f"sql.exec inside an object: INSERT {sql['insert']:,.0f}/s, "
                  f"SELECT by key {sql['select']:,.0f}/s")

            await host.invoke("dobench", "durable_objects.evict", None)
            before = tree_rss_mb(os.getpid())
            t0 = time.perf_counter()
            names = [f"m{i}" for i in range(objects)]
            for start in range(0, objects, 200):
                await asyncio.gather(*(ns.getByName(n).touch() for n in names[start:start + 200]))
            touched_s = time.perf_counter() - t0
            live = tree_rss_mb(os.getpid())
            left = await host.invoke("dobench", "durable_objects.evict", None)
            await asyncio.sleep(0.5)
            after = tree_rss_mb(os.getpid())
            print(f"{objects:,} objects touched once (one write each) in {touched_s:.1f} s "
                  f"({objects / touched_s:,.0f} objects/s)")
            print(f"platform RSS: {before:.0f} MB before, {live:.0f} MB with all live, "
                  f"{after:.0f} MB after eviction ({left} left live); "
                  f"cost after eviction {after - before:+.0f} MB")
        finally:
            await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.skip_http:
        bench_http(args.seconds, args.connections)
    _run(bench_in_process(args.seconds, args.objects))


if __name__ == "__main__":
    main()
