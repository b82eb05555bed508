"""The replay check: unfinished instances replayed against the current code without running
a step, exported histories kept as fixtures (virtual clock, reload in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_app
from test_workflows_support import app_config, lines, workflow_platform

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio

CONFIG = app_config(orders="Orders")

APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from wf_log import mark

    class Orders(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("reserve")
            async def reserve():
                mark(event, "reserve")
                return "r-1"

            @step.do("flaky", config={"retries": {"limit": 3, "delay": "1 hour"}})
            async def flaky(ctx):
                mark(event, f"flaky {ctx.attempt}")
                if event.payload.get("flaky") and ctx.attempt == 1:
                    raise RuntimeError("not yet")
                return 1

            await reserve()
            await flaky()
            await step.sleep("nap", "1 day")
            return await step.do("ship", lambda: "shipped")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


async def test_check_reports_next_step_then_divergence_after_a_rename(tmp_path: Path) -> None:
    log = tmp_path / "side.log"
    async with workflow_platform(tmp_path / "app", {"wrangler_like.toml": CONFIG, "app.py": APP}) as p:
        wf = p.workflow("ORDERS")
        done = await wf.create(id="done", params={"log": str(log)})
        await p.settle()
        await p.advance("1 day")
        await done.wait_for_status("complete")
        napping = await wf.create(id="napping", params={"log": str(log)})
        await wf.create(id="retrying", params={"log": str(log), "flaky": True})
        await p.settle()
        queued = await wf.create(id="fresh", params={"log": str(log)})
        await queued.pause()                       # never ran: no history at all
        assert (await napping.status()).status == "waiting"
        side_effects = lines(log)

        report = await wf.check()
        assert report.checked == 3 and report.diverged == 0          # finished ones are skipped
        by_id = {r.id: r for r in report.instances}
        assert set(by_id) == {"napping", "retrying", "fresh"}
        assert by_id["napping"].ok and by_id["napping"].next == {
            "kind": "step.sleep", "name": "nap", "waiting": "sleep"}
        assert by_id["retrying"].next == {"kind": "step.do", "name": "flaky", "count": 1, "attempt": 2}
        assert by_id["fresh"].next == {"kind": "step.do", "name": "reserve", "count": 1}
        assert by_id["fresh"].status == "paused"
        history = await napping.export()
        json.dumps(history)                                          # a fixture file can hold it
        assert (await p.replay(history))["ok"]
        assert lines(log) == side_effects                            # the check ran no step
        assert (await napping.status()).status == "waiting"          # and changed nothing

        # the code changes: a completed step is renamed
        write_app(tmp_path / "app", {"app.py": APP.replace('@step.do("reserve")', '@step.do("reserve stock")')})
        await p.host.reload("app")
        report = await wf.check()
        assert report.diverged == 2
        for r in report.instances:
            if r.id != "fresh":
                assert not r.ok and "'reserve' #1" in r.error and "'reserve stock'" in r.error, r
        assert next(r for r in report.instances if r.id == "fresh").ok   # no history, nothing to break
        with pytest.raises(AssertionError, match="step.do 'reserve' #1 .* was not reached again"):
            await p.replay(history)
        assert lines(log) == side_effects


async def test_check_reports_a_step_the_new_code_no_longer_reaches(tmp_path: Path) -> None:
    async with workflow_platform(tmp_path / "app", {"wrangler_like.toml": CONFIG, "app.py": APP}) as p:
        inst = await p.workflow("ORDERS").create(params={"log": str(tmp_path / "x.log")})
        await p.settle()
        history = await inst.export()
        write_app(tmp_path / "app", {"app.py": APP.replace("await flaky()\n", "return 'early'\n")})
        await p.host.reload("app")
        with pytest.raises(AssertionError, match="'flaky' #1 \\(recorded\\) is not reached again: run\\(\\) would "
                                                 "complete without it"):
            await p.replay(history)


async def test_replay_rejects_what_is_not_an_exported_history(tmp_path: Path) -> None:
    async with workflow_platform(tmp_path / "app", {"wrangler_like.toml": CONFIG, "app.py": APP}) as p:
        with pytest.raises(ValueError, match="not an exported workflow history"):
            await p.replay({"steps": []})
        with pytest.raises(LookupError, match="workflow 'gone'"):
            await p.replay({"format": "edgelet-workflow-history/1", "workflow": "gone", "id": "x"})


async def test_p_workflow_check_from_the_testing_api(tmp_path: Path) -> None:
    async with workflow_platform(tmp_path / "app", {"wrangler_like.toml": CONFIG, "app.py": APP}) as p:
        assert isinstance(p, Platform)
        report = await p.workflow("orders").check()
        assert report.checked == 0 and report.instances == []
