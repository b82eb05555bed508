"""WebSocket benchmark, edgelet and Miniflare side by side (the same chat-room Durable Object
with the hibernation API: bench/apps/ws/ws.py and bench/peers/miniflare/workers/ws.mjs).

    python bench/ws_bench.py [--seconds 5] [--idle 10000] [--only edgelet|miniflare]

(``python -m bench --only ws`` runs the same workloads in the side-by-side harness, in
alternating rounds; this script is the quick way to look at one side.)

Measures echo round trips per second over 32 sockets (one room each), broadcast fan-out of
one message to 100 sockets in one room (p50/p99 until the last socket has it), and the
resident memory of the whole process tree holding N idle hibernated sockets. With each, the
CPU time the platform's process tree spent per echo round trip and per broadcast: on a shared
machine the rates move with the load, the CPU cost much less (the figure to A/B changes by).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.procs import EdgeletServer, MiniflareServer, StartError, tree_cpu  # noqa: E402
from harness.ws import client_name, echo_rate, fanout, idle_memory  # noqa: E402


async def measure(server, args) -> dict[str, float]:
    pid = server.proc.pid
    cpu0 = [0.0]

    def mark() -> None:
        cpu0[0] = tree_cpu(pid)

    out = {"echo_rps": await echo_rate(server.url, sockets=32, seconds=args.seconds, on_start=mark)}
    # (the timed loop runs ``seconds`` and a last round trip per socket: close enough)
    out["echo_cpu_us"] = (tree_cpu(pid) - cpu0[0]) * 1e6 / (out["echo_rps"] * args.seconds)
    out["fanout_p50_ms"], out["fanout_p99_ms"] = await fanout(server.url, sockets=100, rounds=args.rounds,
                                                              on_start=mark)
    out["fanout_cpu_ms"] = (tree_cpu(pid) - cpu0[0]) * 1e3 / args.rounds
    if args.idle:
        out["idle_mb"] = await idle_memory(server.url, server.proc.pid, sockets=args.idle, settle=args.settle)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=12.0)
    parser.add_argument("--only", choices=["edgelet", "miniflare"])
    args = parser.parse_args()
    os.environ.setdefault("EDGELET_DO_IDLE_TIMEOUT", "1")
    print(f"client: {client_name()}", flush=True)
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
            results[side] = asyncio.run(measure(server, args))
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
