"""edgelet side of the durable-steps pair; run by bench/run.py with the project's Python.

    python edgelet_side.py seq STEPS RUNS STATE_DIR
    python edgelet_side.py concurrent N STEPS STATE_DIR

Prints one JSON line, like dbos_side.py. DBOS is a library inside the application's process,
so edgelet is driven the same way: ``edgelet.testing.Platform`` in this process (host,
scheduler and SQLite here; the Worker that runs the steps in its isolate, as always), with
real time and state persisted in STATE_DIR, and the workflow is bench/apps/workflow's
``Steps`` (a step returns its index). No HTTP is involved on either side. Completion is
observed by polling ``status()`` every millisecond, which the host answers from memory or
SQLite without involving the Worker.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from edgelet.testing import Platform

APP = Path(__file__).resolve().parents[2] / "apps" / "workflow" / "wrangler_like.toml"
FAILED = ("errored", "terminated")


async def wait_complete(instance, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        st = await instance.status()
        status = st["status"]
        if status == "complete":
            return
        if status in FAILED:
            raise RuntimeError(f"instance {instance.id} {status}: {st.get('error')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"instance {instance.id} still {status} after {timeout:g} s")
        await asyncio.sleep(0.001)


async def seq(wf, steps: int, runs: int) -> dict[str, float]:
    await wait_complete(await wf.create(params={"steps": steps}))  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await wait_complete(await wf.create(params={"steps": steps}))
        out.append((time.perf_counter() - t0) * 1000 / steps)
    return {"ms_per_step": statistics.median(out)}


async def concurrent(wf, n: int, steps: int) -> dict[str, float]:
    await wait_complete(await wf.create(params={"steps": steps}))  # warm-up
    create_batch = getattr(wf, "createBatch", None) or wf.create_batch
    t0 = time.perf_counter()
    instances = []
    for start in range(0, n, 100):
        instances += await create_batch([{"params": {"steps": steps}} for _ in range(min(100, n - start))])
    for instance in instances:  # in creation order, which is also the order they are run
        await wait_complete(instance)
    return {"steps_per_s": n * steps / (time.perf_counter() - t0)}


async def main() -> None:
    workload, a, b, state = sys.argv[1:5]
    async with Platform(APP, persist=state) as p:
        wf = p.workflow("STEPS")
        result = await (seq(wf, int(a), int(b)) if workload == "seq" else concurrent(wf, int(a), int(b)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
