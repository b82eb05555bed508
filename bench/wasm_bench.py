"""Wasm Workers: requests/s against the same hello-world handler in Python, the CPU each
costs per request, and the cost of one request inside the isolate.

    python bench/wasm_bench.py [--rounds 3] [--seconds 5] [--connections 32]

Four `edgelet dev` apps answer "Hello World!" over HTTP, each as its primary Worker: a
Python Worker; a Wasm command module (CGI contract: a fresh instance per request) that
only writes stdout; the same module reading its CGI environment first (as a real handler
reading PATH_INFO does); and a Wasm reactor (exported fetch: one instance reused). wrk
drives each with the same settings, in alternating rounds.

Requests/s over HTTP mostly measure the host, which does the same work for every kind of
Worker (HTTP, one channel message), and wrk, which shares the machine's cores: so each
round also reads the CPU time the host and the Worker's isolate spent per request
(process CPU clocks, before and after wrk), which is what the kind of Worker changes and
which a busy machine disturbs far less than wall time.

Then, in this process: one request through the runner as the isolate serves it
(``fetch_now``), on the C path and on the Python path, under an isolate's address-space
limit and instance pool; and ``host.fetch`` to an isolate, one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Dev, median, wrk  # noqa: E402

PYTHON_HELLO = '''\
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("Hello World!")
'''

# The same answer as the Python Worker: Response("Hello World!") has this content type.
CGI_HELLO = r'''
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain;charset=UTF-8\n\nHello World!")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 52))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
'''

# The same, after reading its whole environment (environ_sizes_get + environ_get), as
# getenv("PATH_INFO") in C or std::env::var in Rust does on first use.
CGI_ENV_HELLO = r'''
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain;charset=UTF-8\n\nHello World!")
  (func (export "_start")
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (drop (call $environ (i32.const 1024) (i32.const 4096)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 52))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
'''

REACTOR_HELLO = r'''
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain;charset=UTF-8\n\nHello World!")
  (func (export "alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "fetch") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 52))))
'''

APPS: dict[str, tuple[str, str | None]] = {
    "python": ("hello.py", None),
    "wasm-cgi": ("hello.wasm", CGI_HELLO),
    "wasm-cgi-env": ("hello.wasm", CGI_ENV_HELLO),
    "wasm-reactor": ("hello.wasm", REACTOR_HELLO),
}


def write_apps(base: Path) -> dict[str, Path]:
    folders = {}
    for name, (main, wat) in APPS.items():
        folder = base / name
        folder.mkdir()
        (folder / main).write_bytes(wasmtime.wat2wasm(wat) if wat else PYTHON_HELLO.encode())
        (folder / "wrangler_like.toml").write_text(f'name = "hello"\nmain = "{main}"\n')
        folders[name] = folder
    return folders


def serve_round(folder: Path, seconds: int, connections: int) -> dict[str, Any]:
    """wrk against one app, with the CPU µs per request of its host and its isolates."""
    dev = Dev(folder, "--in-memory")
    try:
        wrk(dev.url + "/", seconds=1, connections=connections)  # warm-up
        host = psutil.Process(dev.proc.pid)
        procs = [host] + host.children(recursive=True)
        before = {p.pid: p.cpu_times() for p in procs}
        r = wrk(dev.url + "/", seconds=seconds, connections=connections)
        after = {p.pid: p.cpu_times() for p in procs}
        r["rss_mb"] = dev.rss_mb()
    finally:
        dev.stop()
    requests = r["rps"] * seconds

    def cpu_us(pids: list[int]) -> float:
        spent = sum(after[p].user + after[p].system - before[p].user - before[p].system
                    for p in pids)
        return spent / requests * 1e6

    r["host_us"] = cpu_us([host.pid])
    r["isolate_us"] = cpu_us([p.pid for p in procs[1:]])  # the Worker's isolate (+ fork server)
    return r


class _Runtime:
    """What a WasmRunner needs of its isolate's Runtime: somewhere to log, and env."""

    env: dict[str, object] = {}

    def log(self, level: str, text: str) -> None:
        pass


def in_isolate_costs(folders: dict[str, Path], n: int = 20000) -> dict[str, float]:
    """µs per request served as the isolate serves it (fetch_now), each Wasm app on the C
    path and on the Python path, and µs per bare instantiation of the CGI module (a Store
    with its WASI context, the instance, the Store deleted), in a child process that has
    an isolate's address-space limit and instance pool; and host.fetch to an isolate, one
    request at a time."""
    import multiprocessing
    results: dict[str, float] = {}
    ctx = multiprocessing.get_context("spawn")
    for name in ("wasm-cgi", "wasm-cgi-env", "wasm-reactor"):
        for path in ("native", "python"):
            with ctx.Pool(1) as pool:
                got = pool.apply(_fetch_now_us, (str(folders[name]), path, n))
            results[f"{name} {path}"] = got["fetch_now"]
            if name == "wasm-cgi":
                results[f"instantiate {path}"] = got["instantiate"]
    results["host.fetch python"] = asyncio.run(_host_fetch_us(folders["python"], "hello.py", n // 4))
    results["host.fetch wasm-cgi"] = asyncio.run(_host_fetch_us(folders["wasm-cgi"], "hello.wasm", n // 4))
    return results


def _fetch_now_us(folder: str, path: str, n: int) -> dict[str, float]:
    memory_mb, slots = 512, 16  # as edgelet.host gives a Wasm Worker's isolate by default
    cap = (memory_mb * (slots + 1) + 256) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if path == "python":
        os.environ["EDGELET_WASM_NATIVE"] = "0"
    from edgelet.runtime.wasm.runner import WasmRunner

    async def measure() -> dict[str, float]:
        runner = WasmRunner({"name": "hello", "main": str(Path(folder) / "hello.wasm"),
                             "limits": {"memory_mb": memory_mb, "instance_slots": slots}},
                            _Runtime())
        runner.load()
        request = ["GET", "http://127.0.0.1:8787/", [["host", "127.0.0.1:8787"],
                                                     ["user-agent", "wrk"]], b""]
        for _ in range(n // 10):
            runner.fetch_now(request)
        t0 = time.perf_counter()
        for _ in range(n):
            runner.fetch_now(request)
        fetch_now = (time.perf_counter() - t0) / n * 1e6
        return {"fetch_now": fetch_now, "instantiate": _instantiate_us(runner, n)}

    return asyncio.run(measure())


def _instantiate_us(runner: Any, n: int) -> float:
    """µs per Store + WASI context + instance + Store deleted, as a command module's
    request pays it (0 for a reactor, which keeps its instance)."""
    from edgelet.runtime.wasm import native as wasm_native
    program = runner._program
    if program.mode != "command":
        return 0.0
    if program.native_pre:
        def once() -> None:
            wasm_native.run(program.native_pre, runner._engine_addr, 1 << 27, 1000,
                            b"hello.wasm", {}, b"", call_start=False)
    else:
        def once() -> None:
            store = runner._new_store({}, 1000)
            store.instantiate(program.pre)
            store.close()
    for _ in range(n // 10):
        once()
    t0 = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - t0) / n * 1e6


async def _host_fetch_us(folder: Path, main: str, n: int) -> float:
    from edgelet.config import load_config_dict
    from edgelet.host import Host
    host = Host(load_config_dict({"name": "hello", "main": main}, base_dir=folder),
                state_dir=folder / "state")
    await host.start()
    try:
        request = ("GET", "http://hello.localhost/", [["host", "hello.localhost"]], b"")
        for _ in range(200):
            await host.fetch("hello", *request)
        t0 = time.perf_counter()
        for _ in range(n):
            await host.fetch("hello", *request)
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgelet-wasm-bench-") as tmp:
        folders = write_apps(Path(tmp))
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in folders}
        for rnd in range(args.rounds):
            for name, folder in folders.items():
                r = serve_round(folder, args.seconds, args.connections)
                if r["non_2xx"]:
                    raise SystemExit(f"{name}: {r['non_2xx']} non-2xx answers")
                results[name].append(r)
                print(f"round {rnd + 1} {name:13} {r['rps']:8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  CPU/request: host {r['host_us']:.1f} µs, "
                      f"isolate {r['isolate_us']:.1f} µs", file=sys.stderr)
        costs = in_isolate_costs(folders)

    print(f"\nhello world over HTTP, {args.connections} connections, median of {args.rounds} x "
          f"{args.seconds} s (wrk), ratios paired by round; CPU per request from the "
          f"processes' CPU clocks:")
    # Ratios are taken round by round (each app against the Python run just before it)
    # and their median reported: the machine's speed drifts between rounds, and a ratio of
    # two medians from different moments would carry that drift.
    python = results["python"]
    for name, rows in results.items():
        rps_ratio = median([r["rps"] / p["rps"] for r, p in zip(rows, python)])
        iso_ratio = median([p["isolate_us"] / r["isolate_us"] for r, p in zip(rows, python)])
        print(f"  {name:13} {median([r['rps'] for r in rows]):8,.0f} req/s ({rps_ratio:4.2f}x Python)  "
              f"p50 {median([r['p50_ms'] for r in rows]):.2f} ms  "
              f"p99 {median([r['p99_ms'] for r in rows]):.2f} ms  "
              f"rss {median([r['rss_mb'] for r in rows]):.0f} MB  "
              f"CPU/request: host {median([r['host_us'] for r in rows]):.1f} µs, "
              f"isolate {median([r['isolate_us'] for r in rows]):.1f} µs "
              f"({iso_ratio:4.2f}x less than Python's)")
    print("one request inside the isolate (runner.fetch_now, no channel), µs:")
    for name in ("wasm-cgi", "wasm-cgi-env", "wasm-reactor"):
        print(f"  {name:13} C path {costs[f'{name} native']:6.2f}   Python path "
              f"{costs[f'{name} python']:6.2f}")
    print(f"instantiation per request of the CGI module (Store, WASI context, instance, Store "
          f"deleted): C path {costs['instantiate native']:.2f} µs, Python path "
          f"{costs['instantiate python']:.2f} µs")
    print(f"host.fetch to the isolate, one at a time: Python {costs['host.fetch python']:.1f} µs, "
          f"Wasm CGI {costs['host.fetch wasm-cgi']:.1f} µs")


if __name__ == "__main__":
    main()
