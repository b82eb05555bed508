"""Queues: throughput to ack, send-to-handler latency, and memory with a large backlog.

    python bench/queue_bench.py [--messages 10000] [--latency-samples 300]
    python bench/queue_bench.py --pending 1000000

Throughput: the Worker of ``bench/apps/queue`` (sendBatch of 100 per request, 8 requests at a time; the
consumer counts acks in its isolate), timed from the first send until the consumer has
acked every message. State on disk (WAL), as with a plain ``edgelet dev``.
Latency: a consumer with ``max_batch_size = 1``; each body carries its send time and the
handler records ``now - sent`` for one message at a time (low load).
Pending: a queue with a producer and no consumer is filled with N small messages; the
host's RSS is sampled as it grows (the messages live in SQLite, not in Python).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Dev, median  # noqa: E402

#: Same Worker as bench/apps/queue (and the Miniflare peer), under another file name:
#: a script named queue.py shadows the standard library's ``queue`` module when
#: ``edgelet dev`` runs in its folder.
THROUGHPUT_APP = {
    "wrangler_like.toml": """
        name = "queue"
        main = "queue_worker.py"
        queues.producers = [{ binding = "Q", queue = "bench-q" }]
        queues.consumers = [{ queue = "bench-q", max_batch_size = 100, max_batch_timeout = 1 }]
    """,
    "queue_worker.py": (ROOT / "bench" / "apps" / "queue" / "consumer.py").read_text(),
}

LATENCY_APP = {
    "wrangler_like.toml": """
        name = "lat"
        main = "lat.py"
        queues.producers = [{ binding = "Q", queue = "lat-q" }]
        queues.consumers = [{ queue = "lat-q", max_batch_size = 1, max_batch_timeout = 0 }]
    """,
    "lat.py": """
        import json, time
        from workers import Response, WorkerEntrypoint

        seen = []

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/send"):
                    await self.env.Q.send({"t": time.time()})
                    return Response("ok")
                return Response(json.dumps(seen))

            async def queue(self, batch):
                now = time.time()
                seen.extend(now - m.body["t"] for m in batch.messages)
    """,
}

PENDING_APP = {
    "wrangler_like.toml": """
        name = "fill"
        main = "fill.py"
        queues.producers = [{ binding = "Q", queue = "backlog" }]
    """,
    "fill.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                n = int(request.url.split("n=")[1])
                for start in range(0, n, 100):
                    await self.env.Q.sendBatch([{"body": {"i": start + i, "pad": "x" * 40}}
                                                for i in range(100)])
                return Response("ok")
    """,
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


def _host_rss_mb(dev: Dev) -> float:
    return psutil.Process(dev.proc.pid).memory_info().rss / 1e6


def bench_throughput(messages: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        dev = Dev(_write(Path(folder), THROUGHPUT_APP), "--persist-to", str(Path(folder) / "state"))
        try:
            asyncio.run(_throughput(dev.url, messages))
        finally:
            dev.stop()


async def _throughput(url: str, messages: int) -> None:
    requests = messages // 100
    async with httpx.AsyncClient(timeout=60) as client:
        gate = asyncio.Semaphore(8)

        async def send(i: int) -> None:
            async with gate:
                resp = await client.get(f"{url}/send?n=100&base={i * 100}")
                resp.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(send(i) for i in range(requests)))
        sent = time.perf_counter() - t0
        while int((await client.get(f"{url}/count")).text) < requests * 100:
            await asyncio.sleep(0.01)
        total = time.perf_counter() - t0
    n = requests * 100
    print(f"throughput: {n:,} messages sent (sendBatch of 100 from a Worker) in {sent:.2f} s, "
          f"all acked after {total:.2f} s = {n / total:,.0f} msg/s end to end")


def bench_latency(samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        dev = Dev(_write(Path(folder), LATENCY_APP), "--persist-to", str(Path(folder) / "state"))
        try:
            with httpx.Client(timeout=30) as client:
                for _ in range(20):  # warm-up
                    client.get(f"{dev.url}/send")
                time.sleep(0.2)
                skip = len(client.get(f"{dev.url}/seen").json())
                for _ in range(samples):
                    client.get(f"{dev.url}/send")
                    time.sleep(0.005)
                deadline = time.monotonic() + 10
                while True:
                    seen = client.get(f"{dev.url}/seen").json()[skip:]
                    if len(seen) >= samples or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        finally:
            dev.stop()
    ms = sorted(v * 1000 for v in seen)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"latency send->handler at low load ({len(ms)} messages, max_batch_size=1): "
          f"p50 {median(ms):.2f} ms, p99 {p99:.2f} ms")


def bench_pending(count: int) -> None:
    step = 100_000 if count >= 200_000 else max(100, count // 5 // 100 * 100)
    with tempfile.TemporaryDirectory() as folder:
        dev = Dev(_write(Path(folder), PENDING_APP), "--persist-to", str(Path(folder) / "state"))
        try:
            with httpx.Client(timeout=600) as client:
                client.get(f"{dev.url}/?n=100")
                base = _host_rss_mb(dev)
                print(f"pending: host RSS {base:.1f} MB with 100 messages")
                t0 = time.perf_counter()
                filled = 100
                while filled < count:
                    n = min(step, count - filled)
                    client.get(f"{dev.url}/?n={n}").raise_for_status()
                    filled += n
                    print(f"pending: {filled:>9,} messages  host RSS {_host_rss_mb(dev):.1f} MB  "
                          f"({filled / (time.perf_counter() - t0):,.0f} msg/s stored)")
                t1 = time.perf_counter()
                listed = client.get(f"{dev.url}/cdn-cgi/edgelet/api/queues").json()["result"]
                list_ms = (time.perf_counter() - t1) * 1000
                backlog = next(q for q in listed if q["name"] == "backlog")["backlog"]
            print(f"pending: {backlog:,} in the backlog; host RSS {_host_rss_mb(dev):.1f} MB "
                  f"(+{_host_rss_mb(dev) - base:.1f} MB over 100 messages); "
                  f"GET /queues took {list_ms:.0f} ms")
        finally:
            dev.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--pending", type=int, default=0,
                        help="only measure host memory with this many pending messages")
    args = parser.parse_args()
    if args.pending:
        bench_pending(args.pending)
        return
    bench_throughput(args.messages)
    bench_latency(args.latency_samples)


if __name__ == "__main__":
    main()
