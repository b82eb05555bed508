"""Hello-world Worker: requests/s and p50/p99 at 32 connections, and time to `Ready`.

    python bench/hello_bench.py [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Dev, median, wrk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    ready_demo, ready_hello, results = [], [], []
    for _ in range(args.rounds):
        demo = Dev(ROOT, "--in-memory")
        ready_demo.append(demo.ready_s)
        demo.stop()
        dev = Dev(ROOT / "bench" / "apps" / "hello", "--in-memory")
        ready_hello.append(dev.ready_s)
        wrk(dev.url + "/", seconds=2)  # warm-up
        results.append(wrk(dev.url + "/", seconds=args.seconds))
        results[-1]["rss_mb"] = dev.rss_mb()
        dev.stop()
    print(f"ready (demo app, median of {args.rounds}): {median(ready_demo) * 1000:.0f} ms")
    print(f"ready (hello): {median(ready_hello) * 1000:.0f} ms")
    print(f"hello-world rps (32 conns, median): {median([r['rps'] for r in results]):,.0f}")
    print(f"p50: {median([r['p50_ms'] for r in results]):.2f} ms   "
          f"p99: {median([r['p99_ms'] for r in results]):.2f} ms")
    print(f"rss after load: {median([r['rss_mb'] for r in results]):.0f} MB; "
          f"non-2xx: {sum(r['non_2xx'] for r in results)}")


if __name__ == "__main__":
    main()
