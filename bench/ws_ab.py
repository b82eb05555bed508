"""A/B of the WebSocket workloads across source trees (and Miniflare), with CPU time per
message of each server's process tree and of the client.

    python bench/ws_ab.py [--rounds 3] [--seconds 5] [--fanout 200] TREE [TREE ...]

A TREE is a checkout with its own ``.venv`` (e.g. ``/work/main``, this worktree) or
``miniflare`` (the peer in bench/.peers). Each round starts every server afresh, in the order
given, and runs the Node.js client (bench/harness/ws_client.mjs): echo over 32 sockets for
``--seconds``, then ``--fanout`` broadcasts to 100 sockets. Reported per round and as medians:
msg/s, the server tree's CPU µs per echo round trip (user and system), the client's, broadcast
p50/p99 and the server's CPU ms per broadcast. On a shared machine the rates move with the
other jobs; CPU per message much less (the figure to compare changes by).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
CLIENT = BENCH / "harness" / "ws_client.mjs"
sys.path.insert(0, str(BENCH))
from common import free_port  # noqa: E402
from hello_ab import stop  # noqa: E402

FIGURES = ("rps", "us_rt", "user", "sys", "client_us", "fan_p50", "fan_p99", "fan_cpu_ms")


def tree_times(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of ``pid`` and each living descendant."""
    out = {}
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return out
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = (t.user, t.system)
        except psutil.Error:
            pass
    return out


def spent(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]) -> tuple[float, float]:
    user = sum(u - before.get(p, (0.0, 0.0))[0] for p, (u, _) in after.items())
    system = sum(s - before.get(p, (0.0, 0.0))[1] for p, (_, s) in after.items())
    return user, system


def start(tree: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start one server: ``edgelet dev`` of ``tree`` on bench/apps/ws, or Miniflare."""
    port = free_port()
    env = {**os.environ, "EDGELET_DO_IDLE_TIMEOUT": "1"}
    if tree == "miniflare":
        env["MINIFLARE_HOME"] = str(BENCH / ".peers" / "miniflare")
        proc = subprocess.Popen(["node", str(BENCH / "peers" / "miniflare" / "server.mjs"), "ws", str(port),
                                 tempfile.mkdtemp(prefix="ws-ab-")], cwd=BENCH, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        marker = b"ready "
    else:
        proc = subprocess.Popen([f"{tree}/.venv/bin/python", "-m", "edgelet.cli", "dev", "--port", str(port),
                                 "--log-level", "warning", "--no-reload", "--in-memory"],
                                cwd=f"{tree}/bench/apps/ws", env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        marker = b"Ready on"
    assert proc.stdout is not None
    seen = b""
    while marker not in seen:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            raise SystemExit(f"{tree}: the server exited: {seen.decode(errors='replace')[-400:]}")
        seen += chunk
    if tree == "miniflare":
        url = seen.split(b"ready ", 1)[1].split()[0].decode().rstrip("/")
        port = int(url.rsplit(":", 1)[1])
    return proc, f"ws://127.0.0.1:{port}"


def client(args: list[str], on_start: Callable[[], None]) -> tuple[dict[str, Any], float]:
    """Run the Node.js client; its result and its own CPU seconds over the timed part."""
    proc = subprocess.Popen(["node", str(CLIENT), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        raise SystemExit(f"the client failed: {(line + proc.stdout.read()).decode(errors='replace')}")
    on_start()
    t0 = psutil.Process(proc.pid).cpu_times()
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    result = json.loads(proc.stdout.readline())
    t1 = psutil.Process(proc.pid).cpu_times()
    proc.wait()
    return result, t1.user + t1.system - t0.user - t0.system


def one(tree: str, seconds: float, rounds: int) -> dict[str, float]:
    proc, base = start(tree)
    try:
        mark: dict[str, Any] = {}
        res, ccpu = client(["echo", base, "32", str(seconds)], lambda: mark.update(t=tree_times(proc.pid)))
        user, system = spent(mark["t"], tree_times(proc.pid))
        n = res["round_trips"]
        out = {"rps": n / res["seconds"], "us_rt": (user + system) * 1e6 / n, "user": user * 1e6 / n,
               "sys": system * 1e6 / n, "client_us": ccpu * 1e6 / n}
        res, _ = client(["fanout", base, "100", str(rounds)], lambda: mark.update(t=tree_times(proc.pid)))
        user, system = spent(mark["t"], tree_times(proc.pid))
        times = sorted(res["times_ms"])
        out.update(fan_p50=statistics.median(times), fan_p99=times[max(0, int(len(times) * 0.99) - 1)],
                   fan_cpu_ms=(user + system) * 1e3 / rounds)
        return out
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--fanout", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.trees}
    for r in range(args.rounds):
        for tree in args.trees:
            out = one(tree, args.seconds, args.fanout)
            results[tree].append(out)
            print(f"round {r + 1} {tree}: " + ", ".join(f"{k}={out[k]:,.2f}" for k in FIGURES), flush=True)
    for tree, rows in results.items():
        print(f"median {tree}: " + ", ".join(f"{k}={statistics.median(o[k] for o in rows):,.2f}" for k in FIGURES))


if __name__ == "__main__":
    main()
