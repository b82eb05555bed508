"""Wasm Workers: requests/s against the same hello-world handler in Python, and the cost of
one fresh instance per request.

    python bench/wasm_bench.py [--rounds 3] [--seconds 5] [--connections 32]

Three `edgelet dev` apps answer "Hello World!" over HTTP, each as its primary Worker: a
Python Worker, a Wasm command module (CGI contract: a fresh instance per request) and a Wasm
reactor (exported fetch: one instance reused). wrk drives each with the same settings, in
alternating rounds. Then, in this process, the per-request instantiation cost: a bare
``InstancePre.instantiate`` plus a Store, a whole CGI request without HTTP (on the calling
thread and through the runner's fetch, as inside an isolate), and ``host.fetch`` to
the Worker's isolate process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

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

REACTOR_HELLO = r'''
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain;charset=UTF-8\n\nHello World!")
  (func (export "alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "fetch") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 52))))
'''

APPS = {
    "python": ("hello.py", PYTHON_HELLO.encode()),
    "wasm-cgi": ("hello.wasm", None),
    "wasm-reactor": ("hello.wasm", None),
}


def write_apps(base: Path) -> dict[str, Path]:
    folders = {}
    for name, (main, text) in APPS.items():
        folder = base / name
        folder.mkdir()
        if text is None:
            text = wasmtime.wat2wasm(CGI_HELLO if name == "wasm-cgi" else REACTOR_HELLO)
        (folder / main).write_bytes(text)
        (folder / "wrangler_like.toml").write_text(f'name = "hello"\nmain = "{main}"\n')
        folders[name] = folder
    return folders


class _Runtime:
    """What a WasmRunner needs of its isolate's Runtime: somewhere to log, and env."""

    env: dict[str, object] = {}

    def log(self, level: str, text: str) -> None:
        pass


def instantiation_cost(folder: Path, n: int = 3000) -> dict[str, float]:
    """µs per fresh instance (Store + InstancePre.instantiate), per whole CGI request, per
    request through the runner's pool thread, and per request from a host to its isolate."""
    from edgelet.config import load_config_dict
    from edgelet.host import Host
    from edgelet.wasm import WasmRunner

    async def measure() -> dict[str, float]:
        runner = WasmRunner({"name": "hello", "main": str(folder / "hello.wasm"),
                             "state_dir": str(folder / "state")}, _Runtime())
        runner.load()
        program = runner._program
        assert program is not None
        for _ in range(200):  # warm-up
            runner._new_store({}, 1000).close()
        t0 = time.perf_counter()
        for _ in range(n):
            store = runner._new_store({}, 1000)
            store.instantiate(program.pre)
            store.close()
        bare = (time.perf_counter() - t0) / n * 1e6
        request = ["GET", "http://hello.localhost/", [["host", "hello.localhost"]], b""]
        t0 = time.perf_counter()
        for _ in range(n):
            runner._serve(program, request, 30.0)
        whole = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n):
            await runner.fetch(request)
        via_runner = (time.perf_counter() - t0) / n * 1e6
        config = load_config_dict({"name": "hello", "main": "hello.wasm"}, base_dir=folder)
        host = Host(config, state_dir=folder / "state")
        await host.start()
        try:
            for _ in range(200):
                await host.fetch("hello", *request)
            t0 = time.perf_counter()
            for _ in range(n // 3):
                await host.fetch("hello", *request)
            via_host = (time.perf_counter() - t0) / (n // 3) * 1e6
        finally:
            await host.stop()
        return {"instantiate_us": bare, "cgi_request_us": whole, "runner_fetch_us": via_runner,
                "host_fetch_us": via_host}

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgelet-wasm-bench-") as tmp:
        folders = write_apps(Path(tmp))
        results: dict[str, list[dict[str, float]]] = {name: [] for name in folders}
        for rnd in range(args.rounds):
            for name, folder in folders.items():
                dev = Dev(folder, "--in-memory")
                try:
                    wrk(dev.url + "/", seconds=1, connections=args.connections)  # warm-up
                    r = wrk(dev.url + "/", seconds=args.seconds, connections=args.connections)
                    r["rss_mb"] = dev.rss_mb()
                finally:
                    dev.stop()
                if r["non_2xx"]:
                    raise SystemExit(f"{name}: {r['non_2xx']} non-2xx answers")
                results[name].append(r)
                print(f"round {rnd + 1} {name:13} {r['rps']:8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms", file=sys.stderr)
        costs = instantiation_cost(folders["wasm-cgi"])

    print(f"\nhello world over HTTP, {args.connections} connections, median of {args.rounds} x "
          f"{args.seconds} s (wrk):")
    base = median([r["rps"] for r in results["python"]])
    for name, rows in results.items():
        rps = median([r["rps"] for r in rows])
        print(f"  {name:13} {rps:8,.0f} req/s  ({rps / base:4.2f}x Python)  "
              f"p50 {median([r['p50_ms'] for r in rows]):.2f} ms  "
              f"p99 {median([r['p99_ms'] for r in rows]):.2f} ms  "
              f"rss {median([r['rss_mb'] for r in rows]):.0f} MB")
    print("per-request costs of a CGI module, no HTTP (runner in this process, no rlimit):")
    print(f"  Store (with WASI) + instantiate + drop:  {costs['instantiate_us']:7.1f} µs")
    print(f"  whole CGI request on the calling thread: {costs['cgi_request_us']:7.1f} µs")
    print(f"  runner.fetch (on the loop, as in an isolate): {costs['runner_fetch_us']:7.1f} µs")
    print(f"  host.fetch (isolate round trip, 1 at a time): {costs['host_fetch_us']:7.1f} µs")


if __name__ == "__main__":
    main()
