"""A/B of the harness's wrk rows across source trees, with CPU time per request.

    python bench/rows_ab.py [--rounds 3] [--seconds 5] [--rows kv,do.one,...] TREE [TREE ...]

Each TREE is a checkout with its own ``.venv`` (``/work/main``, ``/work/wt-base``); every
tree runs the apps of *this* checkout's bench/apps (the same Worker code), state on disk in a
fresh folder as the harness does, so only the platform differs. Per round and row, trees in
order A B then B A: start ``edgelet dev``, prime (if the row does), wrk 1 s to warm up, then
``wrk -t2 -c32`` for ``--seconds`` while reading the CPU time of the server's process tree.
CPU µs per request moves far less with the machine's load than req/s does. Prints each run
and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import free_port  # noqa: E402
from harness.load import RawClient, bounded  # noqa: E402
from hello_ab import cpu_seconds, split_spec, stop, wrk  # noqa: E402

#: row -> (app folder, path under load, priming path with {i} for i in 0..999, or None)
ROWS = {
    "kv": ("kv", "/", None),
    "do.one": ("do", "/one", None),
    "do.many": ("do", "/many", "/obj/{i}"),
    "do_cross.one": ("do_cross", "/one", None),
    "do_cross.many": ("do_cross", "/many", "/obj/{i}"),
    "d1": ("d1", "/", "/setup?i={i}"),
    "r2.small": ("r2", "/small", None),
    "fastapi": ("fastapi", "/items/42?q=x", None),
}


def start(spec: str, app: str, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    tree, env = split_spec(spec)  # TREE+NAME=VALUE: settings for its server (bench/hello_ab.py)
    cmd = [str(Path(tree).resolve() / ".venv" / "bin" / "python"), "-m", "edgelet.cli", "dev", "--port",
           str(port), "--log-level", "warning", "--no-reload", "--persist-to", str(state)]
    proc = subprocess.Popen(cmd, cwd=BENCH / "apps" / app, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"Ready on" in line:
            break
    else:
        raise SystemExit(f"{tree} did not start {app}: {' '.join(cmd)}")
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}"


async def prime(url: str, path: str) -> None:
    client = RawClient(url)
    try:
        await bounded([lambda i=i: client.get(path.format(i=i)) for i in range(1000)], 16)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args()
    rows = args.rows.split(",")
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rnd in range(args.rounds):
        for row in rows:
            app, path, priming = ROWS[row]
            for tree in args.trees if rnd % 2 == 0 else args.trees[::-1]:
                with tempfile.TemporaryDirectory() as state:
                    proc, url = start(tree, app, Path(state))
                    try:
                        if priming:
                            asyncio.run(prime(url, priming))
                        wrk(url + path, 1)
                        before, t0 = cpu_seconds(proc.pid), time.time()
                        rps, bad = wrk(url + path, args.seconds)
                        after, requests = cpu_seconds(proc.pid), rps * (time.time() - t0)
                    finally:
                        stop(proc)
                cpu = (sum(after) - sum(before)) / requests * 1e6
                figures.setdefault((row, tree), []).append((rps, cpu))
                print(f"round {rnd + 1} {row} {tree}: {rps:,.0f} req/s, CPU {cpu:.1f} µs/request"
                      + (f", non-2xx {bad}" if bad else ""), flush=True)
    for row in rows:
        base = None
        for tree in args.trees:
            got = figures[(row, tree)]
            rps, cpu = statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
            base = base or (rps, cpu)
            print(f"median {row} {tree}: {rps:,.0f} req/s ({rps / base[0]:.2f}×), CPU {cpu:.1f} µs/request "
                  f"({cpu / base[1]:.2f}×)")


if __name__ == "__main__":
    main()
