"""A/B of the harness's workflow rows across source trees, with CPU time per step.

    python bench/wf_ab.py [--rounds 3] [--e2e 200] [--instances 200] [--in-flight 1] TREE [TREE ...]

Each TREE is a checkout with its own ``.venv``; all run this checkout's bench/apps/workflow,
state on disk in a fresh folder (as the harness). Per round, trees alternate (A B, then B A):
start ``edgelet dev``; ``e2e``: one 10-step instance created and polled inside the Worker,
``--e2e`` times one after another (median ms); ``wf``: ``--instances`` × 10 steps created
in batches of 100 and scanned until complete (steps/s, and CPU µs per step of the server's
process tree, which moves far less with the machine's load than steps/s does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness.load import RawClient, bounded  # noqa: E402
from hello_ab import cpu_seconds, stop  # noqa: E402
from rows_ab import start  # noqa: E402


async def e2e(url: str, runs: int, pid: int) -> tuple[float, float]:
    """Median ms of one 10-step instance end to end, and CPU µs per run of the tree."""
    c = RawClient(url)
    try:
        for _ in range(5):
            await c.get("/e2e?steps=10", idempotent=False)
        times = []
        before = cpu_seconds(pid)
        for _ in range(runs):
            t0 = time.perf_counter()
            await c.get("/e2e?steps=10", idempotent=False)
            times.append((time.perf_counter() - t0) * 1000)
        after = cpu_seconds(pid)
        return statistics.median(times), (sum(after) - sum(before)) / runs * 1e6
    finally:
        await c.close()


async def fanout(url: str, n: int, pid: int, in_flight: int = 0) -> tuple[float, float]:
    """``in_flight`` createBatch requests at once (0: all; the harness sends one at a time)."""
    c = RawClient(url)
    try:
        prefix = "b" + uuid.uuid4().hex[:8]
        before = cpu_seconds(pid)
        t0 = time.perf_counter()
        await bounded([lambda i=i: c.get(f"/batch?prefix={prefix}&start={i}&n={min(100, n - i)}&steps=10",
                                         idempotent=False) for i in range(0, n, 100)], in_flight or n)
        done = 0
        while done < n:
            done = int(await c.get(f"/scan?prefix={prefix}&n={n}&from={done}"))
            if done < n:
                await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - t0
        after = cpu_seconds(pid)
        return n * 10 / elapsed, (sum(after) - sum(before)) / (n * 10) * 1e6
    finally:
        await c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--e2e", type=int, default=200)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=0,
                        help="createBatch requests at once (0: all; 1: as the harness's full-mode row)")
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float, float, float]]] = {}
    for rnd in range(args.rounds):
        for tree in args.trees if rnd % 2 == 0 else args.trees[::-1]:
            with tempfile.TemporaryDirectory() as state:
                proc, url = start(tree, "workflow", Path(state))
                try:
                    ms, e2e_cpu = asyncio.run(e2e(url, args.e2e, proc.pid))
                    rates = [asyncio.run(fanout(url, args.instances, proc.pid, args.in_flight)) for _ in range(4)]
                    rate = statistics.median(r[0] for r in rates[1:])
                    cpu = statistics.median(r[1] for r in rates[1:])
                finally:
                    stop(proc)
            figures.setdefault(tree, []).append((ms, rate, cpu, e2e_cpu))
            print(f"round {rnd + 1} {tree}: e2e {ms:.2f} ms (CPU {e2e_cpu:.0f} µs/run), {args.instances}x10 "
                  f"{rate:,.0f} steps/s (first {rates[0][0]:,.0f}), CPU {cpu:.1f} µs/step", flush=True)
    base = None
    for tree in args.trees:
        got = figures[tree]
        med = tuple(statistics.median(g[i] for g in got) for i in range(4))
        base = base or med
        print(f"median {tree}: e2e {med[0]:.2f} ms ({med[0] / base[0]:.2f}×), CPU {med[3]:.0f} µs/run "
              f"({med[3] / base[3]:.2f}×); {med[1]:,.0f} steps/s ({med[1] / base[1]:.2f}×), CPU {med[2]:.1f} "
              f"µs/step ({med[2] / base[2]:.2f}×)")


if __name__ == "__main__":
    main()
