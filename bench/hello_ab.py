"""A/B of hello-world across source trees, with CPU time per request.

    python bench/hello_ab.py [--rounds 8] [--seconds 5] [-t 2] [-c 32] TREE [TREE ...]

A TREE is a checkout with its own ``.venv`` (e.g. ``/work/main``, this worktree), optionally
followed by ``+NAME=VALUE`` settings for its server's environment (``.+EDGELET_HTTP_HANDOFF=0``), or one of
``uvicorn`` (bench/apps/hello/app.py on bare uvicorn), ``proto`` and ``handoff`` (the
prototypes in bench/proto/isolate_http.py). Each round starts every server afresh, in
order A B C then C B A (alternating cancels drift in the machine's load), runs wrk 2 s to
warm up, then wrk for ``--seconds`` (2 threads, 32 connections) while reading the CPU time
of the server process and of its children (the isolates), and wrk's p99 latency. CPU µs per request is the
steadier figure on a shared machine: req/s moves with the other jobs, CPU per request much
less. Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import free_port  # noqa: E402

PROTO = BENCH / "proto" / "isolate_http.py"


#: wrk's threads and connections (set by --threads / --connections)
WRK: dict[str, Any] = {"threads": 2, "connections": 32, "close": False}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int) -> tuple[float, int]:
    """req/s and non-2xx responses of a wrk run."""
    return wrk_p99(url, seconds)[:2]


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``TREE+NAME=VALUE+...`` -> the tree and the environment its server runs with."""
    tree, *settings = spec.split("+")
    return tree, {**os.environ, **dict(s.split("=", 1) for s in settings)}


def wrk_p99(url: str, seconds: int) -> tuple[float, int, float]:
    """req/s, non-2xx responses and p99 (ms) of a wrk run."""
    close = ["-H", "Connection: close"] if WRK["close"] else []
    out = subprocess.run(["wrk", f"-t{WRK['threads']}", f"-c{WRK['connections']}", f"-d{seconds}s", "--latency",
                          *close, url], capture_output=True, text=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk gave no figure for {url}: {out or 'no output'}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return (float(found.group(1)), int(bad.group(1)) if bad else 0,
            float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan"))


def start(spec: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    tree, env = split_spec(spec)
    if tree in ("proto", "handoff"):
        cmd = [sys.executable, str(PROTO), str(port)] + (["--handoff"] if tree == "handoff" else [])
        cwd, marker = BENCH, b"Ready on"
    elif tree == "uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--loop", "uvloop",
               "--http", "httptools", "--no-access-log", "--log-level", "info"]
        cwd, marker = BENCH / "apps" / "hello", b"Uvicorn running"
    else:
        root = Path(tree).resolve()
        cmd = [str(root / ".venv" / "bin" / "python"), "-m", "edgelet.cli", "dev", "--port", str(port),
               "--log-level", "warning", "--no-reload", "--in-memory"]
        cwd, marker = root / "bench" / "apps" / "hello", b"Ready on"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            break
    else:
        raise SystemExit(f"{tree} did not start: {' '.join(cmd)}")
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}/"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of the process itself and of all its descendants."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    own, children = times.user + times.system, 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            children += t.user + t.system
        except psutil.Error:
            pass
    return own, children


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a server started by start() (and its isolates): SIGINT, then its group SIGKILLed."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("-c", "--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--close", action="store_true", help="a new connection per request (Connection: close)")
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args()
    WRK.update(threads=args.threads, connections=args.connections, close=args.close)
    rps: dict[str, list[float]] = {t: [] for t in args.trees}
    cpu: dict[str, list[tuple[float, float]]] = {t: [] for t in args.trees}
    p99s: dict[str, list[float]] = {t: [] for t in args.trees}
    for rnd in range(args.rounds):
        for tree in args.trees if rnd % 2 == 0 else args.trees[::-1]:
            proc, url = start(tree)
            try:
                wrk(url, 2)
                before, t0 = cpu_seconds(proc.pid), time.time()
                figure, bad, p99 = wrk_p99(url, args.seconds)
                after, requests = cpu_seconds(proc.pid), figure * (time.time() - t0)
            finally:
                stop(proc)
            per = ((after[0] - before[0]) / requests * 1e6, (after[1] - before[1]) / requests * 1e6)
            rps[tree].append(figure)
            cpu[tree].append(per)
            p99s[tree].append(p99)
            print(f"round {rnd + 1} {tree}: {figure:,.0f} req/s, p99 {p99:.2f} ms, CPU µs/request: server "
                  f"{per[0]:.1f}, children {per[1]:.1f}" + (f", non-2xx {bad}" if bad else ""), flush=True)
    first = statistics.median(rps[args.trees[0]])
    for tree in args.trees:
        mid = statistics.median(rps[tree])
        own = statistics.median(c[0] for c in cpu[tree])
        kids = statistics.median(c[1] for c in cpu[tree])
        print(f"median {tree}: {mid:,.0f} req/s ({mid / first:.2f}× of {args.trees[0]}), p99 "
              f"{statistics.median(p99s[tree]):.2f} ms, CPU µs/request server {own:.1f} + children {kids:.1f} "
              f"= {own + kids:.1f}")


if __name__ == "__main__":
    main()
