"""Workflows: test handles and mocks, cron-scheduled creation, creation from a queue consumer."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from test_workflows_support import seconds, workflow, workflow_mocks, workflow_platform

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = """
    [[workers]]
    name = "app"
    main = "app.py"
    workflows = [
      { name = "mocked", binding = "MOCKED", class_name = "Mocked" },
      { name = "retrying", binding = "RETRYING", class_name = "Retrying" },
      { name = "timed", binding = "TIMED", class_name = "Mocked", schedules = ["*/10 * * * *"] },
    ]
    queues = { producers = [{ binding = "JOBS", queue = "jobs" }] }

    [[workers]]
    name = "consumer"
    main = "consumer.py"
    workflows = [{ name = "mocked", binding = "WF", class_name = "Mocked", script_name = "app" }]
    queues = { consumers = [{ queue = "jobs", max_batch_size = 1, max_batch_timeout = 1 }] }
"""

APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    def mark(event, text):
        path = (event.payload or {}).get("log")
        if path:
            with open(path, "a") as f:
                f.write(text + "\\n")

    class Mocked(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("charge")
            async def charge():
                mark(event, "charge ran")
                return "real charge"
            charged = await charge()
            await step.sleep("cool off", "2 days")
            ev = await step.wait_for_event("approval", "approved", timeout="1 hour")
            try:
                late = await step.wait_for_event("maybe", "late", timeout="1 hour")
                late = late.payload
            except TimeoutError:
                late = "timed out"
            return {"charged": charged, "approval": ev.payload, "late": late}

    class Retrying(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("flaky", config={"retries": {"limit": 2, "delay": "1 hour"}})
            async def flaky(ctx):
                mark(event, f"attempt {ctx.attempt}")
                return ctx.attempt
            return await flaky()

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            await self.env.JOBS.send({"id": request.url.rsplit("/", 1)[1]})
            return Response("queued")
"""

CONSUMER = """
    from workers import WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def queue(self, batch):
            for message in batch.messages:
                await self.env.WF.create(id=message.body["id"], params={"from": "queue"})
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p(tmp_path_factory: pytest.TempPathFactory):
    files = {"wrangler_like.toml": CONFIG, "app.py": APP, "consumer.py": CONSUMER}
    async with workflow_platform(tmp_path_factory.mktemp("wf-mocks"), files) as platform:
        yield platform


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_mocks_replace_steps_sleeps_and_events(p: Platform, tmp_path: Path) -> None:
    mocks = workflow_mocks(p, "mocked")
    mocks.mock_step_result("charge", {"mocked": True})
    mocks.disable_sleeps()
    mocks.mock_event("approved", {"by": "test"})
    mocks.force_event_timeout("maybe")
    mocks.mock_step_error("not a step", "never used")
    log = tmp_path / "log"
    inst = await workflow(p, "MOCKED").create(params={"log": str(log)})
    info = await inst.wait_for_status("complete", timeout=10)
    assert info.output == {"charged": {"mocked": True}, "approval": {"by": "test"}, "late": "timed out"}
    assert lines(log) == []  # the mocked step did not run
    assert await inst.wait_for_step("charge") == {"mocked": True}
    assert await inst.output() == info.output and await inst.error() is None
    assert mocks.unused() == ["not a step"]
    kinds = [(s.type, s.name, s.success) for s in await inst.steps()]
    assert kinds == [("step", "charge", True), ("sleep", "cool off", True),
                     ("waitForEvent", "approval", True), ("waitForEvent", "maybe", False)]
    mocks.clear()
    assert mocks.unused() == []


async def test_mocked_errors_timeouts_and_retry_delays(p: Platform, tmp_path: Path) -> None:
    mocks = workflow_mocks(p, "retrying")
    mocks.disable_retry_delays()
    mocks.mock_step_error("flaky", ValueError("transient"), times=2)
    log = tmp_path / "log"
    inst = await workflow(p, "RETRYING").create(params={"log": str(log)})
    assert (await inst.wait_for_status("complete", timeout=10)).output == 3
    assert lines(log) == ["attempt 3"]  # the first two attempts raised the mock
    steps = await inst.steps()
    assert [a.error for a in steps[0].attempts] == [{"name": "ValueError", "message": "transient"}] * 2 + [None]
    assert await inst.wait_for_step("flaky") == 3

    mocks.clear()
    mocks.disable_retry_delays()
    mocks.force_step_timeout("flaky")
    timed_out = await workflow(p, "RETRYING").create(params={"log": str(log)})
    status = await timed_out.wait_for_status("errored", timeout=10)
    assert status.error.name == "WorkflowTimeoutError"
    from edgelet.bindings.workflows.handle import WorkflowStepFailed
    with pytest.raises(WorkflowStepFailed, match="WorkflowTimeoutError"):
        await timed_out.wait_for_step("flaky")
    mocks.clear()
    mocks.disable_retry_delays()
    mocks.mock_step_error("flaky", "always broken")
    broken = await workflow(p, "RETRYING").create(params={"log": str(log)})
    with pytest.raises(AssertionError, match="errored: Error: always broken"):
        await broken.wait_for_status("complete", timeout=10)
    mocks.clear()


async def test_handle_waits_and_listing(p: Platform) -> None:
    wf = workflow(p, "RETRYING")
    inst = await wf.create(id="handle-1")
    got = await wf.get("handle-1")
    assert got.id == "handle-1"
    await inst.wait_for_status("complete", timeout=10)
    with pytest.raises(ValueError, match="unknown status 'done'"):
        await inst.wait_for_status("done")
    with pytest.raises(TimeoutError, match="still waiting"):
        sleeper = await workflow(p, "MOCKED").create()
        await p.settle()
        await sleeper.wait_for_status("complete", timeout=0.2)
    assert "handle-1" in [i.id for i in await wf.instances(status="complete")]
    described = await inst.describe()
    assert described.status == "complete" and described.trigger.source == "test"


async def test_cron_schedule_creates_instances(p: Platform) -> None:
    wf = workflow(p, "timed")
    before = await wf.instances()
    await p.advance(seconds(601))  # at least one */10 firing
    after = await wf.instances()
    assert len(after) >= len(before) + 1
    created = await after[0].describe()
    assert created.trigger.source == "cron"
    assert created.params["cron"] == "*/10 * * * *" and isinstance(created.params["scheduledTime"], int)


async def test_queue_consumer_creates_instances_through_its_binding(p: Platform) -> None:
    resp = await p.fetch("/from-queue-1")
    assert resp.status == 200 and await resp.bytes() == b"queued"
    await p.advance(seconds(2))
    inst = await workflow(p, "WF", worker="consumer").get("from-queue-1")
    described = await inst.describe()
    assert described.params == {"from": "queue"} and described.trigger.source == "binding"
