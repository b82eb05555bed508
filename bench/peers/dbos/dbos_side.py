"""DBOS side of the durable-steps pair; run by bench/run.py with bench/.peers/dbos-venv's Python.

    python dbos_side.py seq STEPS RUNS STATE_DIR        per-step overhead of a sequential workflow
    python dbos_side.py concurrent N STEPS STATE_DIR    N workflows of STEPS steps started at once

Prints one JSON line. The system database is SQLite in STATE_DIR (DBOS's SQLite mode, as the
issue asks). Each workload is measured with DBOS's synchronous API and its asyncio API, and
both figures are printed; the runner reports the faster one, so DBOS is shown at its best.
A step is a function returning its index, as in bench/apps/workflow's Steps workflow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time

from dbos import DBOS


@DBOS.step()
def step_sync(i: int) -> int:
    return i


@DBOS.workflow()
def steps_sync(n: int) -> int:
    return sum(step_sync(i) for i in range(n))


@DBOS.step()
async def step_async(i: int) -> int:
    return i


@DBOS.workflow()
async def steps_async(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += await step_async(i)
    return acc


def seq(steps: int, runs: int) -> dict[str, float]:
    steps_sync(steps)  # warm-up
    sync = []
    for _ in range(runs):
        t0 = time.perf_counter()
        assert steps_sync(steps) == steps * (steps - 1) // 2
        sync.append((time.perf_counter() - t0) * 1000 / steps)

    async def run_async() -> list[float]:
        await steps_async(steps)
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            assert await steps_async(steps) == steps * (steps - 1) // 2
            out.append((time.perf_counter() - t0) * 1000 / steps)
        return out

    return {"sync_ms_per_step": statistics.median(sync),
            "async_ms_per_step": statistics.median(asyncio.run(run_async()))}


def concurrent(n: int, steps: int) -> dict[str, float]:
    steps_sync(steps)  # warm-up
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(steps_sync, steps) for _ in range(n)]
    for h in handles:
        h.get_result()
    sync = n * steps / (time.perf_counter() - t0)

    async def run_async() -> float:
        await steps_async(steps)
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(DBOS.start_workflow_async(steps_async, steps) for _ in range(n)))
        await asyncio.gather(*(h.get_result() for h in handles))
        return n * steps / (time.perf_counter() - t0)

    return {"sync_steps_per_s": sync, "async_steps_per_s": asyncio.run(run_async())}


def main() -> None:
    workload, a, b, state = sys.argv[1:5]
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(config={"name": "edgelet-bench", "system_database_url": f"sqlite:///{state}/dbos.sqlite",
                 "log_level": "WARNING"})
    DBOS.launch()
    try:
        result = seq(int(a), int(b)) if workload == "seq" else concurrent(int(a), int(b))
    finally:
        DBOS.destroy()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
