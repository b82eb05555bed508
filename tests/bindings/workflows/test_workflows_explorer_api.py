"""The workflow routes the explorer uses beyond Cloudflare's: id search and delete."""

from __future__ import annotations

import time
from typing import Any

FILES = {"wrangler_like.toml": """
    [[workers]]
    name = "w"
    main = "w.py"
    compatibility_date = "2026-11-01"
    workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
""", "w.py": """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("one")
            async def one():
                return 1
            await one()
            await step.wait_for_event("go", "go", timeout="1 hour")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""}


def test_id_search_and_delete(dev: Any) -> None:
    s = dev(FILES)
    for i in ("a-1", "a-2", "b-1"):
        assert s.api("POST", "/workflows/flow/instances", json={"instance_id": i})["success"]
    found = s.api("GET", "/workflows/flow/instances?id=a-")
    assert sorted(r["id"] for r in found["result"]) == ["a-1", "a-2"]
    assert found["result_info"]["total_count"] == 2
    deadline = time.monotonic() + 20
    while s.api("GET", "/workflows/flow/instances/a-1")["result"]["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    live = s.api("DELETE", "/workflows/flow/instances/a-1")
    assert live["success"] is False and live["errors"][0]["code"] == 10409
    message = live["errors"][0]["message"]
    assert "instance 'a-1' is waiting" in message and "terminate it first" in message
    assert s.api("GET", "/workflows/flow/instances/a-1")["result"]["steps"]  # nothing removed
    s.api("PATCH", "/workflows/flow/instances/a-1/status", json={"status": "terminate"})
    assert s.api("DELETE", "/workflows/flow/instances/a-1")["success"] is True
    gone = s.api("GET", "/workflows/flow/instances/a-1")
    assert gone["success"] is False and "has no instance 'a-1'" in gone["errors"][0]["message"]
    # the id is free again
    assert s.api("POST", "/workflows/flow/instances", json={"instance_id": "a-1"})["success"]
