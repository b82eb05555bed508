"""A/B of queue send-to-ack across source trees, with CPU time per message.

    python bench/queue_ab.py [--rounds 6] [--messages 50000] [--profile DIR] TREE [TREE ...]

A TREE is a checkout with its own ``.venv`` (e.g. ``/work/main``, this worktree). Each round
starts ``edgelet dev`` of every tree afresh on bench/apps/queue (state on disk in a fresh
folder, as the harness does), in order A B then B A, warms up with 2,000 messages, then
sends ``--messages`` in sendBatch-es of 100, 8 requests in flight (the harness's workload,
longer so that one run is not a handful of poll intervals), and waits until the consumer
has acked all of them. Reports msg/s and the CPU µs per message of the host and of its
isolates: the steadier figure on a shared machine. ``--profile DIR`` records py-spy of the
host and of the isolate during the measured part (raw, 250 Hz) into DIR/<tree>-<round>-*.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import free_port  # noqa: E402
from harness.load import RawClient, bounded  # noqa: E402
from hello_ab import cpu_seconds, stop  # noqa: E402

APP = BENCH / "apps" / "queue"


def start(tree: str, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    root = Path(tree).resolve()
    port = free_port()
    cmd = [str(root / ".venv" / "bin" / "python"), "-m", "edgelet.cli", "dev", "--port", str(port),
           "--log-level", "warning", "--no-reload", "--persist-to", str(state)]
    proc = subprocess.Popen(cmd, cwd=root / "bench" / "apps" / "queue", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"Ready on" in line:
            break
    else:
        raise SystemExit(f"{tree} did not start: {' '.join(cmd)}")
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}"


async def send_and_wait(url: str, n: int, base: int) -> float:
    """Send ``n`` messages (batches of 100, 8 in flight); seconds until all are acked."""
    client = RawClient(url)
    try:
        t0 = time.perf_counter()
        await bounded([lambda i=i: client.get(f"/send?n=100&base={i * 100}", idempotent=False)
                       for i in range(n // 100)], 8)
        while int(await client.get("/count")) < base + n:
            await asyncio.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        await client.close()


def spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([pyspy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw", "--gil",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args()
    rate: dict[str, list[float]] = {t: [] for t in args.trees}
    cpu: dict[str, list[tuple[float, float]]] = {t: [] for t in args.trees}
    for rnd in range(args.rounds):
        for tree in args.trees if rnd % 2 == 0 else args.trees[::-1]:
            with tempfile.TemporaryDirectory() as state:
                proc, url = start(tree, Path(state))
                spies: list[subprocess.Popen[bytes]] = []
                try:
                    asyncio.run(send_and_wait(url, 2000, 0))
                    if args.profile:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        tag = f"{Path(tree).resolve().name}-{rnd + 1}"
                        kids = psutil.Process(proc.pid).children(recursive=True)
                        spies = [spy(proc.pid, args.profile / f"{tag}-host.txt")] + [
                            spy(k.pid, args.profile / f"{tag}-isolate{i}.txt") for i, k in enumerate(kids)]
                        time.sleep(0.5)
                    before = cpu_seconds(proc.pid)
                    seconds = asyncio.run(send_and_wait(url, args.messages, 2000))
                    after = cpu_seconds(proc.pid)
                finally:
                    for s in spies:
                        s.send_signal(signal.SIGINT)
                    for s in spies:
                        s.wait(30)
                    stop(proc)
            per = tuple((a - b) / args.messages * 1e6 for a, b in zip(after, before, strict=True))
            rate[tree].append(args.messages / seconds)
            cpu[tree].append(per)  # type: ignore[arg-type]
            print(f"round {rnd + 1} {tree}: {args.messages / seconds:,.0f} msg/s, CPU µs/message: "
                  f"host {per[0]:.2f}, isolates {per[1]:.2f}", flush=True)
    first = statistics.median(rate[args.trees[0]])
    for tree in args.trees:
        mid = statistics.median(rate[tree])
        own = statistics.median(c[0] for c in cpu[tree])
        kids = statistics.median(c[1] for c in cpu[tree])
        print(f"median {tree}: {mid:,.0f} msg/s ({mid / first:.2f}× of {args.trees[0]}), CPU µs/message "
              f"host {own:.2f} + isolates {kids:.2f} = {own + kids:.2f}")


if __name__ == "__main__":
    main()
