"""Workflows under edgelet.testing, written as a user would from the README and SPEC 10."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from edgelet.testing import MockNotUsedError, Platform

FILES = {
    "wrangler_like.toml": """
        name = "shop"
        main = "shop.py"
        workflows = [{ name = "order", binding = "MY_WORKFLOW", class_name = "Order" }]
    """,
    "shop.py": """
        from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

        class Order(WorkflowEntrypoint):
            async def run(self, event, step):
                @step.do(config={"retries": {"limit": 4, "delay": "1 minute", "backoff": "exponential"}})
                async def charge(ctx):
                    if ctx["attempt"] < 4:
                        raise RuntimeError(f"card declined on attempt {ctx['attempt']}")
                    return {"charged": event["payload"]["order"], "attempt": ctx["attempt"]}

                charged = await charge()
                await step.sleep("cool off", "30 days")
                shipped = await step.wait_for_event("shipped", "shipped", timeout="24 hours")
                return {"charged": charged, "carrier": shipped["payload"]["carrier"]}

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                inst = await self.env.MY_WORKFLOW.create(params={"order": 7})
                return Response(inst.id)
    """,
}


def app(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "wrangler_like.toml"


async def test_month_long_workflow_runs_in_virtual_time(tmp_path):
    started = time.perf_counter()
    async with Platform(app(tmp_path), clock="virtual") as p:
        wf = p.workflow("MY_WORKFLOW")
        inst = await wf.create(params={"order": 7})
        await p.advance("8 minutes")          # retries after 1, 2, 4 minutes
        assert (await inst.wait_for_step("charge"))["attempt"] == 4
        await p.advance("30 days")
        assert (await inst.status())["status"] == "waiting"
        await inst.sendEvent(type="shipped", payload={"carrier": "owl"})
        await inst.wait_for_status("complete")
        assert await inst.output() == {"charged": {"charged": 7, "attempt": 4}, "carrier": "owl"}
        steps = await inst.steps()
        assert [s["name"] for s in steps] == ["charge", "cool off", "shipped"]
        assert len(steps[0]["attempts"]) == 4
    # The bar is "well under a second"; this bound only catches a real-time sleep.
    assert time.perf_counter() - started < 10


async def test_auto_advance_and_instance_created_over_http(tmp_path):
    async with Platform(app(tmp_path), clock="virtual", auto_advance=True) as p:
        instance_id = await (await p.fetch("/")).text()
        inst = await p.workflow("MY_WORKFLOW").get(instance_id)
        await inst.wait_for_status("waiting")
        await inst.sendEvent(type="shipped", payload={"carrier": "van"})
        await inst.wait_for_status("complete", timeout=30)
        assert (await inst.output())["carrier"] == "van"


async def test_auto_advance_does_not_jump_to_retention_and_delete_a_finished_instance(tmp_path):
    """Idle after an instance finished, auto-advance used to leap the 7 days of retention
    and delete it: the test's next ``status()`` raised LookupError."""
    async with Platform(app(tmp_path), clock="virtual", auto_advance=True) as p:
        started = p.now
        wf = p.workflow("MY_WORKFLOW")
        wf.mock_event("shipped", {"carrier": "van"})
        inst = await wf.create(params={"order": 8})
        await inst.wait_for_status("complete", timeout=30)
        await asyncio.sleep(0.3)  # idle: auto-advance looks for a timer to jump to
        assert (await inst.status())["status"] == "complete"
        assert p.now - started < 31 * 86400  # the retries, the 30-day cool-off: no more
        await p.advance("8 days")  # an explicit advance still passes retention
        with pytest.raises(LookupError, match="has no instance"):
            await inst.status()


async def test_mocks_and_fail_fast_wait(tmp_path):
    async with Platform(app(tmp_path), clock="virtual") as p:
        wf = p.workflow("MY_WORKFLOW")
        wf.mock_step_result("charge", {"charged": "mocked"})
        wf.disable_sleeps()
        wf.mock_event("shipped", {"carrier": "mock"})
        inst = await wf.create()
        status = await inst.wait_for_status("complete")
        assert status["output"] == {"charged": {"charged": "mocked"}, "carrier": "mock"}

    async with Platform(app(tmp_path), clock="virtual") as p:
        wf = p.workflow("MY_WORKFLOW")
        wf.mock_step_error("charge", ValueError("no card"))
        wf.disable_retry_delays()
        inst = await wf.create()
        with pytest.raises(Exception, match="no card"):
            await inst.wait_for_status("complete")   # errored is final: fails fast
        assert (await inst.error())["message"] == "no card"
        with pytest.raises(ValueError):
            await inst.wait_for_status("finished")   # not a status


async def test_mocking_a_step_that_never_runs_is_reported(tmp_path):
    with pytest.raises(MockNotUsedError, match="chrage"):
        async with Platform(app(tmp_path), clock="virtual") as p:
            wf = p.workflow("MY_WORKFLOW")
            wf.mock_step_result("chrage", 1)
            wf.disable_retry_delays()
            inst = await wf.create(params={"order": 1})
            await inst.wait_for_step("charge")
