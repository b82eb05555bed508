"""CPU per storage write turn of a Durable Object, in-process (no platform, no HTTP).

    python bench/do_turn_commit_bench.py [--turns 20000]

Writes of one event-loop turn commit together (bindings/durable_objects/isolate/storage.py):
this measures a turn with one ``put`` and a turn with five, each followed by
``await asyncio.sleep(0)`` so that every turn commits. Run it with a baseline tree's
interpreter too (``cd /work/main && .venv/bin/python <this file>``) for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage


async def per_turn(storage: DurableObjectStorage, turns: int, puts: int) -> float:
    """Microseconds of CPU per turn of ``puts`` writes of a 100-byte value."""
    value = "v" * 100
    start = time.process_time()
    for i in range(turns):
        for j in range(puts):
            storage.put(f"k{(i + j) % 100}", value)
        await asyncio.sleep(0)
    return (time.process_time() - start) / turns * 1e6


async def main(turns: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        storage = DurableObjectStorage(Path(folder) / "o.sqlite3", alarms=AlarmClient())
        await storage.put("warm", 1)
        one = await per_turn(storage, turns, 1)
        five = await per_turn(storage, turns // 4, 5)
        storage.close()
    print(f"1 put per turn: {one:.1f} us   5 puts per turn: {five:.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20000)
    asyncio.run(main(parser.parse_args().turns))
