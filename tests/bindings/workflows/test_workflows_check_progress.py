"""`edgelet workflows check` over many instances: a progress bar on a terminal, none piped;
the check pages through the instances (`{after, limit}`) and says the same either way."""

from __future__ import annotations

import subprocess
import time

from conftest import EDGELET
from ptyrun import BAR, run_in_terminal

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "orders", binding = "ORDERS", class_name = "Orders" }]
"""
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Orders(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("reserve", lambda: "r-1")
            await step.wait_for_event("wait for payment", "paid", timeout="1 hour")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""
COUNT = 120  # more than one page (100) and than the bar's threshold (50)


def test_check_of_many_instances_shows_a_bar_on_a_terminal_only(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    for start in range(0, COUNT, 60):  # createBatch takes at most 100
        created = s.api("POST", "/workflows/orders/instances",
                        json=[{"id": f"o-{i}"} for i in range(start, start + 60)])
        assert created["success"], created
    deadline = time.monotonic() + 60
    while s.api("GET", "/workflows/orders")["result"]["instances"]["waiting"] < COUNT:
        assert time.monotonic() < deadline, s.api("GET", "/workflows/orders")
        time.sleep(0.1)

    argv = [*EDGELET, "workflows", "check", "--port", str(s.port)]
    code, out = run_in_terminal(argv, s.cwd)
    assert code == 0, out
    assert BAR in out and f"{COUNT}/{COUNT}" in out, out
    assert f"orders: {COUNT} unfinished instance(s) checked, 0 would diverge" in out

    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=s.cwd)
    assert piped.returncode == 0, piped.stderr
    assert BAR not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
    assert f"orders: {COUNT} unfinished instance(s) checked, 0 would diverge" in piped.stdout
    assert piped.stdout.count("o-") >= COUNT  # one line per instance, every page included


def test_a_page_of_the_check_names_the_next_cursor(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/orders/instances", json=[{"id": f"p-{i}"} for i in range(3)])["success"]
    deadline = time.monotonic() + 30
    while s.api("GET", "/workflows/orders")["result"]["instances"]["waiting"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = s.api("POST", "/workflows/orders/check", json={"limit": 2})["result"]
    assert first["checked"] == 2 and first["next"] is not None
    rest = s.api("POST", "/workflows/orders/check", json={"after": first["next"], "limit": 2})["result"]
    assert rest["checked"] == 1 and rest["next"] is None
    ids = [r["id"] for r in first["instances"] + rest["instances"]]
    assert sorted(ids) == ["p-0", "p-1", "p-2"]
    whole = s.api("POST", "/workflows/orders/check", json={})["result"]
    assert whole["checked"] == 3 and whole["next"] is None
    bad = s.api("POST", "/workflows/orders/check", json={"limit": 0})
    assert not bad["success"] and "limit must be a whole number from 1 to 1000" in bad["errors"][0]["message"]
    huge = s.api("POST", "/workflows/orders/check", json={"after": 2**70})
    assert not huge["success"] and huge["errors"][0]["message"].startswith("after must be a whole number")
