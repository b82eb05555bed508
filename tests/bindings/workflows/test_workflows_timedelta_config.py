"""A step's retry delay and timeout may be ``timedelta``s, as a sleep's duration may: the
step runs, retries after that delay, and ``describe`` shows them as milliseconds (it failed
the step with "Object of type timedelta is not JSON serializable")."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflows_support import seconds, workflow_platform

pytestmark = pytest.mark.asyncio

FILES = {
    "wrangler_like.toml": """
        name = "app"
        main = "app.py"
        workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
    """,
    "app.py": """
        import datetime
        from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

        class Flow(WorkflowEntrypoint):
            async def run(self, event, step):
                config = {"retries": {"limit": 2, "delay": datetime.timedelta(minutes=1), "backoff": "constant"},
                          "timeout": datetime.timedelta(seconds=30)}

                @step.do("flaky", config=config)
                async def flaky(ctx):
                    if ctx["attempt"] == 1:
                        raise RuntimeError("first attempt fails")
                    return ctx["attempt"]

                return await flaky()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """,
}


async def test_timedelta_retry_delay_and_timeout(tmp_path: Path) -> None:
    async with workflow_platform(tmp_path, FILES) as p:
        inst = await p.workflow("FLOW").create(id="t1")
        await p.advance(seconds(59))
        assert (await inst.status())["status"] == "waiting"  # the retry waits its minute
        await p.advance(seconds(2))
        status = await inst.wait_for_status("complete")
        assert status["output"] == 2
        step = (await inst.steps())[0]
        assert step["config"] == {"retries": {"limit": 2, "delay": 60000.0, "backoff": "constant"},
                                  "timeout": 30000.0}
