"""The replay check in ``edgelet dev``: a reload that renames a completed step is reported
per instance in the log, and ``edgelet workflows check`` says the same (exit 1)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import EDGELET

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "orders", binding = "ORDERS", class_name = "Orders" },
      { name = "other", binding = "OTHER", class_name = "Other" },
    ]
"""
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Orders(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("reserve", lambda: "r-1")
            got = await step.wait_for_event("wait for payment", "paid", timeout="1 hour")
            return await step.do("ship", lambda: got.payload)

    class Other(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("prepare", lambda: 1)
            await step.sleep("later", "1 hour")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def check(s, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGELET, "workflows", "check", *names, "--port", str(s.port)],
                          capture_output=True, text=True, timeout=60, cwd=s.cwd)


def wait_for(s, predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}:\n{s.logs()[-3000:]}"
        time.sleep(0.05)


def test_reload_that_renames_a_completed_step_is_reported(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory", "--log-level", "info")
    for i in range(2):
        assert s.api("POST", "/workflows/orders/instances", json={"id": f"o-{i}"})["success"]
    assert s.api("POST", "/workflows/other/instances", json={"id": "x-1"})["success"]
    wait_for(s, lambda: all(s.api("GET", f"/workflows/{w}/instances/{i}")["result"]["status"] == "waiting"
                            for w, i in (("orders", "o-0"), ("orders", "o-1"), ("other", "x-1"))), "not waiting")
    before = check(s)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "orders/o-0 (waiting): ok, waits in step.wait_for_event 'wait for payment'" in before.stdout
    assert "other/x-1 (waiting): ok, waits in step.sleep 'later'" in before.stdout

    app = Path(s.cwd) / "app.py"
    app.write_text(app.read_text().replace('step.do("reserve"', 'step.do("reserve stock"'))
    wait_for(s, lambda: "o-1 (waiting): DIVERGES" in s.logs(), "no warning after the reload")
    logs = s.logs()
    for i in range(2):
        assert f"orders/o-{i} (waiting): DIVERGES: replay of instance 'o-{i}' diverged" in logs
    assert "step.do 'reserve' #1 (completed) was not reached again" in logs
    assert "x-1 (waiting): DIVERGES" not in logs

    after = check(s, "orders")
    assert after.returncode == 1
    assert "orders/o-0 (waiting): DIVERGES" in after.stdout and "'reserve stock'" in after.stdout
    assert "orders: 2 unfinished instance(s) checked, 2 would diverge" in after.stdout
    # the check changed nothing: the instances still wait
    assert s.api("GET", "/workflows/orders/instances/o-0")["result"]["status"] == "waiting"


def test_check_against_a_script_that_does_not_load_names_the_workers_error(dev) -> None:
    """It said the check "failed inside edgelet" and logged a host traceback for the
    user's own syntax error."""
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/orders/instances", json={"id": "o1"})["success"]
    script = Path(s.cwd) / "app.py"
    script.write_text(script.read_text() + "\ndef broken(:\n")
    deadline = time.monotonic() + 15
    while "failed to load" not in s.logs():
        assert time.monotonic() < deadline, s.logs()
        time.sleep(0.05)
    result = check(s, "orders")
    assert result.returncode == 1
    assert "Worker 'app'" in result.stderr and "SyntaxError" in result.stderr
    assert "fix the Worker (edgelet dev reloads it on save) and try again (code 10503)" in result.stderr
    assert "inside edgelet" not in result.stderr
    assert "control API" not in s.logs()  # no host traceback for the user's own mistake
