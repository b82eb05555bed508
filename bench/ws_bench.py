"""WebSocket benchmark, edgelet and Miniflare side by side (the same chat-room Durable Object
with the hibernation API: bench/apps/ws/ws.py and bench/peers/miniflare/workers/ws.mjs).

    python bench/ws_bench.py [--seconds 5] [--idle 10000] [--only edgelet|miniflare]

Measures echo round trips per second over 32 sockets (one room each), broadcast fan-out of
one message to 100 sockets in one room (p50/p99 until the last socket has it), and the
resident memory of the whole process tree holding N idle hibernated sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.procs import EdgeletServer, MiniflareServer, StartError, tree_rss  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402


async def echo_rate(base: str, sockets: int, seconds: float) -> float:
    conns = [await connect(f"{base}/room/echo{i}", compression=None) for i in range(sockets)]
    count = 0
    deadline = time.perf_counter() + seconds

    async def loop(ws) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await ws.send("e:x")
            await ws.recv()
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(ws) for ws in conns))
    elapsed = time.perf_counter() - started
    for ws in conns:
        await ws.close()
    return count / elapsed


async def fanout(base: str, sockets: int, rounds: int) -> tuple[float, float]:
    conns = [await connect(f"{base}/room/fan", compression=None, max_queue=None)
             for _ in range(sockets)]
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        await conns[0].send(f"b:{i}")
        await asyncio.gather(*(ws.recv() for ws in conns))
        times.append((time.perf_counter() - started) * 1000)
    for ws in conns:
        await ws.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


async def idle_memory(base: str, pid: int, sockets: int, settle: float) -> float:
    conns = []
    for start in range(0, sockets, 200):
        batch = await asyncio.gather(*(connect(f"{base}/room/idle{i % 100}", compression=None,
                                               ping_interval=None)
                                       for i in range(start, min(start + 200, sockets))))
        conns.extend(batch)
    await asyncio.sleep(settle)  # idle objects are evicted; the sockets stay open
    rss = tree_rss(pid) / 2**20
    await conns[0].send("e:still there?")
    assert await conns[0].recv() == "e:still there?"
    for ws in conns:
        await ws.close()
    return rss


async def measure(side: str, server, args) -> dict[str, float]:
    base = server.url.replace("http://", "ws://")
    out = {"echo_rps": await echo_rate(base, 32, args.seconds)}
    out["fanout_p50_ms"], out["fanout_p99_ms"] = await fanout(base, 100, args.rounds)
    if args.idle:
        out["idle_mb"] = await idle_memory(base, server.proc.pid, args.idle, args.settle)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--only", choices=["edgelet", "miniflare"])
    args = parser.parse_args()
    os.environ.setdefault("EDGELET_DO_IDLE_TIMEOUT", "1")
    results = {}
    for side in ("edgelet", "miniflare"):
        if args.only and side != args.only:
            continue
        state = Path(tempfile.mkdtemp(prefix=f"ws-bench-{side}-"))
        try:
            server = EdgeletServer("ws", state) if side == "edgelet" else MiniflareServer("ws", state)
        except StartError as exc:
            print(f"{side}: not run ({exc})", file=sys.stderr)
            continue
        try:
            results[side] = asyncio.run(measure(side, server, args))
        finally:
            server.stop()
        print(side, {k: round(v, 1) for k, v in results[side].items()}, flush=True)
    if len(results) == 2:
        e, m = results["edgelet"], results["miniflare"]
        print(f"echo: edgelet/miniflare = {e['echo_rps'] / m['echo_rps']:.2f}x; "
              f"fan-out p50: miniflare/edgelet = {m['fanout_p50_ms'] / e['fanout_p50_ms']:.2f}x, "
              f"p99 = {m['fanout_p99_ms'] / e['fanout_p99_ms']:.2f}x")


if __name__ == "__main__":
    main()
