"""Workflows on the real clock: step timeouts cut an attempt off on time, and a run of many
fast steps keeps working while a slow one is watched (one timer per session serves every
attempt's timeout and in-flight note)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_workflows_support import workflow, write_app

from edgelet.testing import Platform

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "timed", binding = "TIMED", class_name = "Timed" },
      { name = "branches", binding = "BRANCHES", class_name = "Branches" },
    ]
"""

APP = """
    import asyncio
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Timed(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("slow", config={"timeout": "300 ms", "retries": {"limit": 1, "delay": 0}})
            async def slow(ctx):
                await asyncio.sleep(5)
                return "finished"
            try:
                await slow()
            except Exception as exc:
                return [type(exc).__name__, str(exc)]

    class Branches(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("slow", config={"timeout": "2 seconds"})
            async def slow():
                await asyncio.sleep(0.4)
                return "slow done"

            async def fast_ones():
                total = 0
                for i in range(50):
                    total += await step.do(f"fast-{i}", lambda: 1)
                return total

            return await asyncio.gather(slow(), fast_ones())

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


@pytest.mark.asyncio
async def test_a_step_attempt_times_out_on_time_on_the_real_clock(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        t0 = time.monotonic()
        inst = await workflow(p, "TIMED").create(id="t-1")
        info = await inst.wait_for_status("complete", timeout=10)
        took = time.monotonic() - t0
        name, message = info.output
        assert name == "WorkflowTimeoutError"
        assert message == "step 'slow' attempt 2 timed out after 300 ms (config timeout '300 ms')"
        assert 0.55 <= took < 2.5  # two attempts of 300 ms each: never early, not seconds late
        attempts = (await inst.steps())[0].attempts
        assert [(a.success, a.error["name"]) for a in attempts] == [(False, "WorkflowTimeoutError")] * 2


@pytest.mark.asyncio
async def test_fast_steps_beside_a_slow_one_all_complete_and_none_times_out(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        inst = await workflow(p, "BRANCHES").create(id="b-1")
        info = await inst.wait_for_status("complete", timeout=10)
        assert info.output == ["slow done", 50]
        steps = await inst.steps()
        assert len(steps) == 51 and all(s.success and len(s.attempts) == 1 for s in steps)
