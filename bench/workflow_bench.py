"""Workflow micro-benchmarks against a real ``edgelet dev`` (durable state, WAL).

    .venv/bin/python bench/workflow_bench.py [--quick] [--rss] [--only NAME,...]

Prints one line per measurement; does not write bench/RESULTS.md.

- ``step``: per-step overhead of one sequential 100-step instance (median, p99), from the
  recorded step end times (each step is committed before the next one starts);
- ``create``: instance creations/s through the Worker binding and through the control API
  (into a workflow whose only running slot is held, so nothing else runs meanwhile);
- ``fanout``: 1,000 instances x 10 steps at once, in steps/s;
- ``wake``: waking an instance whose history holds 1,000 completed steps (replay + 1 step);
- ``resume``: restart-to-all-resumed: 10,000 instances asleep, kill -9, start again after
  their sleep ended, time until every one completed;
- ``check``: ``POST /workflows/{name}/check`` (the replay check, no step runs) over 10,000
  unfinished instances, each with a completed step and a pending sleep;
- ``subscribe``: 1,000 instances x 10 steps without and then with 100 SSE subscribers (one
  on each of the first 100 instances, from their creation to their end): the step
  throughput of both and the events delivered per second;
- ``rss`` (with --rss): resident memory with 50,000 waiting instances.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

CONFIG = """
    name = "bench"
    main = "bench.py"
    workflows = [
      { name = "seq", binding = "SEQ", class_name = "Sequential" },
      { name = "held", binding = "HELD", class_name = "Held", concurrency = 1 },
      { name = "ten", binding = "TEN", class_name = "Ten" },
      { name = "napper", binding = "NAPPER", class_name = "Napper" },
      { name = "long", binding = "LONG", class_name = "Long" },
      { name = "parked", binding = "PARKED", class_name = "Napper" },
      { name = "ten_plain", binding = "TEN_PLAIN", class_name = "Ten" },
      { name = "ten_watched", binding = "TEN_WATCHED", class_name = "Ten" },
    ]
"""

APP = """
    import asyncio
    from urllib.parse import parse_qs, urlparse
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Sequential(WorkflowEntrypoint):
        async def run(self, event, step):
            total = 0
            for i in range(event.payload["steps"]):
                total += await step.do(f"s{i}", lambda: 1)
            return total

    class Held(WorkflowEntrypoint):
        async def run(self, event, step):
            if event.payload and event.payload.get("hold"):
                await step.wait_for_event("forever", "never", timeout="1 day")

    class Ten(WorkflowEntrypoint):
        async def run(self, event, step):
            for i in range(10):
                await step.do(f"s{i}", lambda: i)

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: 1)
            await step.sleep("nap", event.payload["nap"])
            await step.do("after", lambda: 2)

    class Long(WorkflowEntrypoint):
        async def run(self, event, step):
            for i in range(1000):
                await step.do(f"s{i}", lambda: i)
            await step.wait_for_event("go", "go", timeout="1 day")
            return await step.do("last", lambda: "done")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
            n, prefix = int(q["n"]), q["prefix"]
            wf = getattr(self.env, q.get("wf", "HELD"))
            for i in range(n):
                await wf.create(id=f"{prefix}-{i}")
            return Response(str(n))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dev:
    """One ``edgelet dev`` on a folder (kept across restarts)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> float:
        self.port = free_port()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgelet.cli", "dev", "--port", str(self.port), "--persist-to", "state",
             "--log-level", "warning", "--no-reload"], cwd=self.folder, stdout=subprocess.PIPE,
            stderr=open(self.folder / "dev.log", "ab"), start_new_session=True)
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if b"Ready on" in line:
                return time.perf_counter() - t0
            if not line and self.proc.poll() is not None:
                raise RuntimeError((self.folder / "dev.log").read_text()[-2000:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/cdn-cgi/edgelet/api/workflows"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_mb(self) -> float:
        import psutil
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6


def report(name: str, value: str) -> None:
    print(f"{name:<52} {value}", flush=True)


def instance(c: httpx.Client, dev: Dev, wf: str, iid: str) -> dict[str, Any]:
    r = c.get(f"{dev.api}/{wf}/instances/{iid}").json()
    assert r["success"], r
    return r["result"]


def wait_count(c: httpx.Client, dev: Dev, wf: str, status: str, n: int, timeout: float) -> float:
    t0 = time.perf_counter()
    while True:
        counts = c.get(f"{dev.api}/{wf}").json()["result"]["instances"]
        if counts.get(status, 0) >= n:
            return time.perf_counter() - t0
        if counts.get("errored"):
            raise RuntimeError(f"{wf}: {counts}")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{wf}: only {counts} after {timeout:g} s")
        time.sleep(0.05)


def create_batches(c: httpx.Client, dev: Dev, wf: str, prefix: str, n: int, params: Any = None) -> None:
    for first in range(0, n, 100):
        body = [{"instance_id": f"{prefix}-{i}", "params": params} for i in range(first, min(first + 100, n))]
        r = c.post(f"{dev.api}/{wf}/instances", json=body).json()
        assert r["success"], r


def bench_step(c: httpx.Client, dev: Dev) -> None:
    c.post(f"{dev.api}/seq/instances", json={"instance_id": "warm", "params": {"steps": 5}})
    c.post(f"{dev.api}/seq/instances", json={"instance_id": "seq-100", "params": {"steps": 100}})
    while instance(c, dev, "seq", "seq-100")["status"] != "complete":
        time.sleep(0.05)
    import sqlite3
    db = sqlite3.connect(f"file:{dev.folder / 'state' / 'workflows.sqlite3'}?mode=ro", uri=True)
    ends = [r[0] for r in db.execute(  # the API shows milliseconds; the rows hold more
        "SELECT s.ended FROM steps s JOIN instances i ON i.seq = s.instance WHERE i.id = 'seq-100' "
        "ORDER BY s.seq")]
    db.close()
    gaps = sorted((b - a) * 1000 for a, b in zip(ends, ends[1:]))
    p99 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]
    report("step: per-step overhead, sequential 100 steps", f"median {statistics.median(gaps):.2f} ms, "
           f"p99 {p99:.2f} ms")


def bench_create(c: httpx.Client, dev: Dev, n: int) -> None:
    c.post(f"{dev.api}/held/instances", json={"instance_id": "holder", "params": {"hold": True}})
    t0 = time.perf_counter()
    c.get(f"{dev.url}/?n={n}&prefix=b", timeout=600)
    report(f"create: through the binding ({n} sequential creates)", f"{n / (time.perf_counter() - t0):,.0f}/s")
    t0 = time.perf_counter()
    for i in range(n):
        r = c.post(f"{dev.api}/held/instances", json={"instance_id": f"a-{i}"})
        assert r.status_code == 201, r.text
    report(f"create: through the control API ({n} sequential POSTs)", f"{n / (time.perf_counter() - t0):,.0f}/s")
    t0 = time.perf_counter()
    create_batches(c, dev, "held", "ab", n)
    report(f"create: control API batches of 100 ({n})", f"{n / (time.perf_counter() - t0):,.0f}/s")


def bench_fanout(c: httpx.Client, dev: Dev, n: int) -> None:
    t0 = time.perf_counter()
    create_batches(c, dev, "ten", "f", n)
    wait_count(c, dev, "ten", "complete", n, timeout=600)
    took = time.perf_counter() - t0
    report(f"fanout: {n} instances x 10 steps at once", f"{n * 10 / took:,.0f} steps/s ({took:.1f} s)")


def bench_wake(c: httpx.Client, dev: Dev) -> None:
    c.post(f"{dev.api}/long/instances", json={"instance_id": "long-1"})
    while instance(c, dev, "long", "long-1")["status"] != "waiting":
        time.sleep(0.05)
    t0 = time.perf_counter()
    c.post(f"{dev.api}/long/instances/long-1/events/go", json={})
    # poll the per-status counts: the instance detail carries all 1,000 steps and
    # reading it would cost more than the wake itself
    while c.get(f"{dev.api}/long").json()["result"]["instances"].get("complete", 0) < 1:
        time.sleep(0.002)
    report("wake: instance with 1,000 completed steps", f"{(time.perf_counter() - t0) * 1000:.0f} ms to complete")


def bench_resume(c: httpx.Client, dev: Dev, n: int) -> None:
    nap = 3000 if n <= 2000 else 8000
    create_batches(c, dev, "napper", "r", n, {"nap": nap})
    wait_count(c, dev, "napper", "waiting", n, timeout=600)
    dev.kill()
    time.sleep(nap / 1000 + 0.5)
    started = dev.start()
    took = wait_count(c, dev, "napper", "complete", n, timeout=600)
    report(f"resume: kill -9 with {n:,} in flight, all complete after restart",
           f"{took + started:.1f} s (start {started:.1f} s)")


def bench_check(c: httpx.Client, dev: Dev, n: int) -> None:
    create_batches(c, dev, "parked", "k", n, {"nap": 3_600_000})
    wait_count(c, dev, "parked", "waiting", n, timeout=1200)
    t0 = time.perf_counter()
    r = c.post(f"{dev.api}/parked/check", json={}, timeout=600).json()
    took = time.perf_counter() - t0
    assert r["success"] and r["result"]["checked"] == n and r["result"]["diverged"] == 0, str(r)[:500]
    report(f"check: replay check of {n:,} unfinished instances", f"{took:.2f} s ({n / took:,.0f}/s)")


def bench_subscribe(c: httpx.Client, dev: Dev, n: int, watchers: int) -> None:
    import threading

    t0 = time.perf_counter()
    create_batches(c, dev, "ten_plain", "p", n)
    wait_count(c, dev, "ten_plain", "complete", n, timeout=600)
    plain = n * 10 / (time.perf_counter() - t0)

    delivered = [0] * watchers

    async def watch(client: httpx.AsyncClient, i: int) -> None:
        url = f"{dev.api}/ten_watched/instances/w-{i}/subscribe"
        async with client.stream("GET", url) as resp:
            async for chunk in resp.aiter_raw():
                delivered[i] += chunk.count(b"\n\n")

    async def watch_all() -> None:  # one thread and one loop for all subscribers, as a browser tab
        limits = httpx.Limits(max_connections=watchers + 10)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=600), limits=limits) as client:
            await asyncio.gather(*(watch(client, i) for i in range(watchers)))

    t0 = time.perf_counter()
    create_batches(c, dev, "ten_watched", "w", min(watchers, n))
    threads = [threading.Thread(target=asyncio.run, args=(watch_all(),), daemon=True)]
    for t in threads:
        t.start()
    if n > watchers:
        for first in range(watchers, n, 100):
            body = [{"instance_id": f"w-{i}"} for i in range(first, min(first + 100, n))]
            assert c.post(f"{dev.api}/ten_watched/instances", json=body).json()["success"]
    wait_count(c, dev, "ten_watched", "complete", n, timeout=600)
    took = time.perf_counter() - t0
    for t in threads:
        t.join(60)
    watched = n * 10 / took
    events = sum(delivered) - watchers  # each stream starts with one ": subscribed" comment
    report(f"subscribe: {n} x 10 steps, no subscribers", f"{plain:,.0f} steps/s")
    report(f"subscribe: {n} x 10 steps, {watchers} SSE subscribers", f"{watched:,.0f} steps/s "
           f"({(plain - watched) / plain * 100:+.1f}% slower), {events:,} events delivered "
           f"({events / took:,.0f}/s)")


def bench_rss(c: httpx.Client, dev: Dev, n: int) -> None:
    before = dev.rss_mb()
    create_batches(c, dev, "napper", "w", n, {"nap": 3_600_000})
    wait_count(c, dev, "napper", "waiting", n, timeout=1200)
    report(f"rss: {n:,} waiting instances", f"{dev.rss_mb():.0f} MB (was {before:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--rss", action="store_true", help="also 50,000 waiting instances")
    parser.add_argument("--only", default="", help="comma-separated: step,create,fanout,wake,resume,check,subscribe,rss")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(","))) or {"step", "create", "fanout", "wake", "resume", "check",
                                                       "subscribe"}
    if args.rss:
        only.add("rss")
    folder = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    (folder / "wrangler_like.toml").write_text(textwrap.dedent(CONFIG))
    (folder / "bench.py").write_text(textwrap.dedent(APP))
    dev = Dev(folder)
    dev.start()
    try:
        with httpx.Client(timeout=120) as c:
            if "step" in only:
                bench_step(c, dev)
            if "create" in only:
                bench_create(c, dev, 500 if args.quick else 2000)
            if "fanout" in only:
                bench_fanout(c, dev, 200 if args.quick else 1000)
            if "wake" in only:
                bench_wake(c, dev)
            if "resume" in only:
                bench_resume(c, dev, 1000 if args.quick else 10_000)
            if "check" in only:
                bench_check(c, dev, 1000 if args.quick else 10_000)
            if "subscribe" in only:
                bench_subscribe(c, dev, 200 if args.quick else 1000, 100)
            if "rss" in only:
                bench_rss(c, dev, 5000 if args.quick else 50_000)
    finally:
        dev.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))  # uvloop/asyncio import warm-up, harmless
    main()
