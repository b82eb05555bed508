"""Workflows: saga rollbacks — reverse step-start order, recorded like steps, retried, and
visible in status() and describe (virtual clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflows_support import app_config, lines, module_platform, seconds, workflow

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = app_config(saga="Saga", notfn="NotFn")

APP = """
    import asyncio
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from workers.workflows import NonRetryableError
    from wf_log import mark

    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            mode = event.payload.get("mode", "fail")
            undo_cfg = {"retries": {"limit": 2, "delay": "10 seconds", "backoff": "constant"}}

            def undo_reserve(output, error):
                mark(event, f"undo reserve {output} after {type(error).__name__}: {error}")

            undo_calls = []

            async def undo_charge(ctx, output):
                mark(event, f"undo charge {output} attempt {ctx.attempt}")
                if mode == "flaky-undo" and ctx.attempt == 1:
                    raise RuntimeError("refund gateway busy")
                if mode == "broken-undo":
                    raise RuntimeError("refund impossible")

            @step.do("reserve", rollback=undo_reserve)
            async def reserve():
                mark(event, "reserve")
                return "r-1"

            @step.do("charge", rollback=undo_charge, rollback_config=undo_cfg)
            async def charge(reserve):
                mark(event, "charge")
                return "c-" + reserve

            @step.do("no undo")
            async def plain():
                return 1

            @step.do("ship", config={"retries": {"limit": 0}})
            async def ship(charge):
                mark(event, "ship")
                if mode == "ok":
                    return "shipped"
                raise NonRetryableError("carrier gone")

            await plain()
            if mode == "caught":
                await charge()
                try:
                    await step.do("boom", {"retries": {"limit": 0}}, lambda: 1 / 0, rollback=lambda: None)
                except ZeroDivisionError:
                    return "handled"
            return await ship()

    class NotFn(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("x", lambda: 1, rollback="undo it")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


p = module_platform("wf-rollback", {"wrangler_like.toml": CONFIG, "app.py": APP})


async def test_failure_runs_rollbacks_in_reverse_start_order(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "saga.log"
    inst = await workflow(p, "SAGA").create(params={"log": str(log)})
    await p.settle()
    info = await inst.status()
    assert info.status == "errored"
    assert info.error == {"name": "NonRetryableError", "message": "carrier gone"}
    assert lines(log) == ["reserve", "charge", "ship", "undo charge c-r-1 attempt 1",
                          "undo reserve r-1 after NonRetryableError: carrier gone"]
    assert info.rollback == {"status": "complete", "steps": [
        {"name": "charge", "count": 1, "status": "ok", "error": None},
        {"name": "reserve", "count": 1, "status": "ok", "error": None}]}
    described = await inst.describe()
    assert [(r.name, r.status, len(r.attempts)) for r in described.rollbacks] == [
        ("charge", "ok", 1), ("reserve", "ok", 1)]
    assert described.rollbacks[0].config["retries"]["limit"] == 2


async def test_rollback_retries_are_durable_and_never_rerun(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "saga.log"
    inst = await workflow(p, "SAGA").create(params={"log": str(log), "mode": "flaky-undo"})
    await p.settle()
    info = await inst.status()
    assert info.status == "waiting"                        # the rollback waits for its retry
    assert info.rollback["status"] == "running"
    assert info.rollback["steps"] == [{"name": "charge", "count": 1, "status": "retrying", "error": None}]
    await p.advance(seconds(11))
    info = await inst.wait_for_status("errored", timeout=5)
    assert info.rollback["status"] == "complete"
    assert lines(log) == ["reserve", "charge", "ship", "undo charge c-r-1 attempt 1",
                          "undo charge c-r-1 attempt 2",
                          "undo reserve r-1 after NonRetryableError: carrier gone"]
    rb = (await inst.describe()).rollbacks
    assert [a.success for a in rb[0].attempts] == [False, True]


async def test_a_failed_rollback_is_reported_and_the_others_still_run(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "saga.log"
    inst = await workflow(p, "SAGA").create(params={"log": str(log), "mode": "broken-undo"})
    await p.advance(seconds(30))
    info = await inst.wait_for_status("errored", timeout=5)
    assert info.error["message"] == "carrier gone"         # the instance's error stays the cause
    assert info.rollback["status"] == "failed"
    assert info.rollback["steps"][0] == {"name": "charge", "count": 1, "status": "failed",
                                         "error": {"name": "RuntimeError", "message": "refund impossible"}}
    assert info.rollback["steps"][1]["status"] == "ok"
    assert sum(1 for line in lines(log) if line.startswith("undo charge")) == 3   # 1 + limit 2


async def test_no_rollback_when_the_instance_succeeds_or_run_catches(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "saga.log"
    ok = await workflow(p, "SAGA").create(params={"log": str(log), "mode": "ok"})
    assert (await ok.wait_for_status("complete", timeout=5)).output == "shipped"
    caught = await workflow(p, "SAGA").create(params={"log": str(log), "mode": "caught"})
    info = await caught.wait_for_status("complete", timeout=5)
    assert info.output == "handled" and "rollback" not in info
    assert not any(line.startswith("undo") for line in lines(log))
    assert (await caught.describe()).rollbacks == []


async def test_rollback_that_is_not_callable_names_workflow_and_option(p: Platform) -> None:
    inst = await workflow(p, "NOTFN").create()
    await p.settle()
    info = await inst.status()
    assert info.status == "errored" and info.error["name"] == "TypeError"
    assert "workflow 'notfn', step 'x': rollback must be a function" in info.error["message"]
