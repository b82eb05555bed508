"""edgelet.testing: time to start and stop a Platform for the demo app (virtual clock).

    python bench/testing_bench.py [--rounds 20]

Target (issue 6): under 300 ms, so a hundred tests start a hundred platforms in under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def start_stop(rounds: int) -> list[float]:
    from edgelet.testing import Platform
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        async with Platform(ROOT / "wrangler_like.toml", clock="virtual"):
            pass
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    times = asyncio.run(start_stop(args.rounds))
    times.sort()
    print(f"Platform start+stop, demo app, virtual clock ({args.rounds} rounds): "
          f"median {statistics.median(times) * 1000:.0f} ms, "
          f"p90 {times[int(len(times) * 0.9) - 1] * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
