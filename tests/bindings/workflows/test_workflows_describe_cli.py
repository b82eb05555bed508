"""`edgelet workflows instances describe` of an instance terminated during a sleep
(issue 13: N7): the sleep no longer shows as waiting, and the termination row is there."""

from __future__ import annotations

import subprocess
import time

from conftest import EDGELET

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "napper", binding = "NAPPER", class_name = "Napper" }]
"""
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: 1)
            await step.sleep("long nap", "1 hour")
            return "woke"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def _rows(text: str) -> dict[str, str]:
    """The steps table of describe: row name (type column) -> the whole line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#"))
    return {line.split()[1]: line for line in lines[start + 1:] if line.strip()}


def test_describe_of_an_instance_terminated_during_a_sleep(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    created = s.api("POST", "/workflows/napper/instances", json={"id": "nap-1", "params": {}})
    assert created["success"], created
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if s.api("GET", "/workflows/napper/instances/nap-1")["result"]["status"] == "waiting":
            break
        time.sleep(0.05)
    changed = s.api("PATCH", "/workflows/napper/instances/nap-1/status", json={"status": "terminate"})
    assert changed["success"], changed
    api = s.api("GET", "/workflows/napper/instances/nap-1")["result"]
    assert api["status"] == "terminated" and api["steps"][-1]["type"] == "termination"

    result = subprocess.run([*EDGELET, "workflows", "instances", "describe", "napper", "nap-1",
                             "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert result.returncode == 0, result.stderr
    assert "Status:    terminated" in result.stdout
    rows = _rows(result.stdout)
    assert set(rows) == {"step", "sleep", "termination"}, result.stdout
    assert " ok " in rows["step"]
    assert "waiting" not in rows["sleep"] and "terminated" in rows["sleep"], rows["sleep"]
    assert "terminated" in rows["termination"] and "by api" in rows["termination"]
