"""KV throughput: put+get through a Worker over HTTP, and the raw plug-in without HTTP.

    python bench/kv_bench.py [--seconds 10] [--connections 32] [--in-memory]

HTTP: ``bench/apps/kv`` (one put and one get of a 100-byte value per request, on a key drawn
from 10,000) driven by httpx async clients over N concurrent connections; the httpx client
tops out near 1.5k req/s on its own, so wrk (when installed) is run too for the server's
real figure.
Raw: the KV plug-in's ``handle_call`` (what an isolate's call reaches) on a real state
folder, from 1 and from 32 concurrent coroutines (the latter is where group commit pays),
so it shows the storage cost alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Dev, wrk  # noqa: E402


async def _http(url: str, seconds: float, connections: int) -> tuple[int, int]:
    """Requests done in ``seconds`` by ``connections`` keep-alive connections.

    One single-connection AsyncClient per connection: a shared 32-connection pool spends
    more time in httpcore's pool bookkeeping than in HTTP (about 400 req/s even for hello).
    """
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=30)
               for _ in range(connections)]
    done = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            resp = await client.get(url)
            if resp.status_code == 200:
                done += 1
            else:
                errors += 1

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    return done, errors


def _run(coro: Any) -> Any:
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


def bench_http(seconds: float, connections: int, in_memory: bool) -> None:
    with tempfile.TemporaryDirectory() as state:
        args = ["--in-memory"] if in_memory else ["--persist-to", state]
        dev = Dev(ROOT / "bench" / "apps" / "kv", *args)
        try:
            _run(_http(dev.url + "/", 1.0, connections))  # warm-up
            t0 = time.perf_counter()
            done, errors = _run(_http(dev.url + "/", seconds, connections))
            elapsed = time.perf_counter() - t0
            where = "in memory" if in_memory else "on disk"
            print(f"HTTP put+get through a Worker, httpx ({connections} conns, {where}): "
                  f"{done / elapsed:,.0f} req/s = {2 * done / elapsed:,.0f} KV ops/s; "
                  f"errors: {errors}")
            if shutil.which("wrk"):  # a client that is not itself the bottleneck
                r = wrk(dev.url + "/", connections=connections, seconds=int(seconds))
                print(f"HTTP put+get through a Worker, wrk ({connections} conns, {where}): "
                      f"{r['rps']:,.0f} req/s = {2 * r['rps']:,.0f} KV ops/s; "
                      f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; "
                      f"non-2xx: {r['non_2xx']}")
        finally:
            dev.stop()


async def _raw(seconds: float, in_memory: bool) -> None:
    from edgelet.config import load_config
    from edgelet.host import Host

    with tempfile.TemporaryDirectory() as state:
        config = load_config(cwd=ROOT / "bench" / "apps" / "kv")
        host = Host(config, state_dir=None if in_memory else Path(state))
        plugin = host.plugin("kv")
        await plugin.start(host)
        worker = config.primary.name
        value = b"v" * 100
        where = "in memory" if in_memory else "on disk (WAL)"

        async def loop(method: str, deadline: float) -> int:
            n = 0
            while time.perf_counter() < deadline:
                key = f"k{random.randrange(10000)}"
                if method == "put":
                    await plugin.handle_call(worker, "KV", "put", [key, value, None, None, None])
                else:
                    await plugin.handle_call(worker, "KV", "get", [key, False])
                n += 1
            return n

        for method in ("put", "get"):
            for concurrency in (1, 32):
                t0 = time.perf_counter()
                counts = await asyncio.gather(*(loop(method, t0 + seconds)
                                                for _ in range(concurrency)))
                rate = sum(counts) / (time.perf_counter() - t0)
                print(f"raw plug-in {method} ({where}, {concurrency} concurrent callers): "
                      f"{rate:,.0f} ops/s")
        handle = plugin.test_handle(worker, "KV")
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() < t0 + seconds:
            key = f"k{random.randrange(10000)}"
            await handle.put(key, "v" * 100)
            await handle.get(key)
            n += 2
        print(f"host handle put+get: {n / (time.perf_counter() - t0):,.0f} ops/s")
        await plugin.stop()
        host.database("kv").close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--in-memory", action="store_true")
    args = parser.parse_args()
    bench_http(args.seconds, args.connections, args.in_memory)
    asyncio.run(_raw(min(args.seconds, 3), args.in_memory))


if __name__ == "__main__":
    main()
