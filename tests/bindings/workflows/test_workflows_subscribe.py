"""``subscribe(filter, cursor)``: the retained history then live events with Cloudflare's
types, ``eventId`` as cursor — from a test handle and from inside a Worker (virtual clock)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from test_workflows_support import seconds, workflow, workflow_platform

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "story", binding = "STORY", class_name = "Story" },
      { name = "quick", binding = "QUICK", class_name = "Quick" },
    ]
"""

APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Story(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("flaky", config={"retries": {"limit": 2, "delay": "10 seconds", "backoff": "constant"}})
            async def flaky(ctx):
                if ctx.attempt == 1:
                    raise ValueError("first try fails")
                return ctx.attempt

            @step.do("secret", config={"sensitive": "output"})
            async def secret():
                return "hunter2"

            await flaky()
            await secret()
            await step.sleep("nap", "1 minute")
            got = await step.wait_for_event("approval", "approved", timeout="1 hour")
            return {"ok": got.payload}

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("one", lambda: 1)
            return "done"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            inst = await self.env.QUICK.create(id=request.url.rsplit("/", 1)[1])
            seen = []
            async for ev in inst.subscribe(filter=["workflow", "step.completed"]):
                seen.append([ev.type, ev.eventId, ev.get("output")])
            return Response.json(seen)
"""

STORY = ["workflow.queued", "workflow.started", "step.started", "attempt.started", "attempt.failed",
         "attempt.started", "step.completed", "step.started", "attempt.started", "step.completed",
         "sleep.started", "sleep.completed", "wait.started", "wait.completed", "workflow.completed"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p(tmp_path_factory: pytest.TempPathFactory):
    files = {"wrangler_like.toml": CONFIG, "app.py": APP}
    async with workflow_platform(tmp_path_factory.mktemp("wf-subscribe"), files) as platform:
        yield platform


async def collect(it: Any, into: list[dict[str, Any]]) -> None:
    async for event in it:
        into.append(event)


async def test_retained_history_then_live_events_until_the_end(p: Platform) -> None:
    inst = await workflow(p, "STORY").create(id="s1")
    await p.settle()                                   # attempt 1 failed; waiting for the retry
    got: list[dict[str, Any]] = []
    reader = asyncio.ensure_future(collect(inst.subscribe(), got))
    await asyncio.sleep(0.05)
    assert [e["type"] for e in got] == STORY[:5]       # the retained history, at once
    await p.advance(seconds(10))
    await p.advance(seconds(60))
    await asyncio.sleep(0.05)
    assert got[-1]["type"] == "wait.started" and not reader.done()   # live, still open
    await inst.sendEvent(type="approved", payload="yes")
    await asyncio.wait_for(reader, 5)                  # ends with workflow.completed
    assert [e["type"] for e in got] == STORY
    ids = [e["eventId"] for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    failed = got[4]
    assert failed["step"] == {"name": "flaky", "count": 1} and failed["attempt"] == 1
    assert failed["error"] == {"name": "ValueError", "message": "first try fails"}
    assert got[6]["output"] == 2 and got[9]["output"] == "[REDACTED]"
    assert got[-1]["output"] == {"ok": "yes"}

    # a cursor resumes after that event; a filter keeps some types (or families)
    rest = [e async for e in inst.subscribe(cursor=ids[9])]
    assert [e["type"] for e in rest] == STORY[10:]
    steps = [e async for e in inst.subscribe(filter="step")]
    assert [e["type"] for e in steps] == [t for t in STORY if t.startswith("step.")]


async def test_unknown_cursor_or_filter_names_workflow_and_option(p: Platform) -> None:
    inst = await workflow(p, "QUICK").create(id="q-bad")
    await inst.wait_for_status("complete", timeout=5)
    with pytest.raises(ValueError, match="subscribe on workflow 'quick': unknown cursor 999999 for instance 'q-bad'"):
        inst.subscribe(cursor=999999)
    with pytest.raises(ValueError, match="subscribe on workflow 'quick': filter names unknown event type 'step.done'"):
        inst.subscribe(filter=["step.done"])


async def test_subscribe_inside_a_worker(p: Platform) -> None:
    seen = await (await p.fetch("/q-worker")).json()
    assert [s[0] for s in seen] == ["workflow.queued", "workflow.started", "step.completed", "workflow.completed"]
    assert seen[2][2] == 1 and seen[3][2] == "done"
