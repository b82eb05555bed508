"""Instance events over HTTP: Server-Sent Events from the control API (with Last-Event-ID)
and ``edgelet workflows instances tail`` against a real ``edgelet dev``."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
from conftest import EDGELET

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "gate", binding = "GATE", class_name = "Gate" }]
"""
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Gate(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("prepare", lambda: "ready")
            got = await step.wait_for_event("open", "open", timeout="1 hour")
            return got.payload

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def sse_events(lines: list[str]) -> list[dict]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


def test_sse_stream_and_cli_tail(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/gate/instances", json={"id": "g1"})["success"]
    deadline = time.monotonic() + 20
    while s.api("GET", "/workflows/gate/instances/g1")["result"]["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    url = f"{s.url}/cdn-cgi/edgelet/api/workflows/gate/instances/g1/subscribe"
    tail = subprocess.Popen([*EDGELET, "workflows", "instances", "tail", "gate", "g1", "--port", str(s.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=s.cwd)
    lines: list[str] = []
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=30)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            lines.append(line)
            if line.startswith("event: wait.started"):
                # everything retained arrived; now make something happen live
                s.api("POST", "/workflows/gate/instances/g1/events/open", json={"door": 1})
    events = sse_events(lines)
    assert [e["type"] for e in events] == [
        "workflow.queued", "workflow.started", "step.started", "attempt.started", "step.completed",
        "wait.started", "wait.completed", "workflow.completed"]
    assert f"id: {events[0]['eventId']}" in lines and "event: workflow.queued" in lines
    assert events[-1]["output"] == {"door": 1}

    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    printed = out.splitlines()
    assert len(printed) == len(events)
    assert "workflow.completed" in printed[-1] and "'prepare' #1  ready" in printed[4]

    # Last-Event-ID resumes after that event; an unknown cursor is a 400 naming the option
    with httpx.stream("GET", url, headers={"Last-Event-ID": str(events[5]["eventId"])}, timeout=10) as resp:
        resumed = sse_events(list(resp.iter_lines()))
    assert [e["type"] for e in resumed] == ["wait.completed", "workflow.completed"]
    bad = httpx.get(url, params={"cursor": 424242}, timeout=10)
    assert bad.status_code == 400
    assert "unknown cursor 424242" in bad.json()["errors"][0]["message"]
    cli = subprocess.run([*EDGELET, "workflows", "instances", "tail", "gate", "g1", "--cursor", "424242",
                          "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert cli.returncode != 0 and "subscribe on workflow 'gate': unknown cursor 424242" in cli.stderr
