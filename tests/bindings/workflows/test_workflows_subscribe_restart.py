"""A restarted instance's event stream goes on past its earlier run's end: the SSE route,
`edgelet workflows instances tail` and a Worker's ``instance.subscribe()`` all show the new
run (they used to stop at the first run's ``workflow.completed``/``terminated``)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
from conftest import EDGELET
from test_workflows_support import FLOW_CONFIG

CONFIG = FLOW_CONFIG
APP = """
    import json
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("one")
            async def one():
                return 1
            await one()
            got = await step.wait_for_event("go", "go", timeout="1 hour")
            return got.payload

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            inst = await self.env.FLOW.get(request.url.rsplit("/", 1)[1])
            types = [e["type"] async for e in inst.subscribe()]
            return Response(json.dumps(types))
"""
RUN = ["workflow.started", "step.started", "attempt.started", "step.completed", "wait.started",
       "wait.completed", "workflow.completed"]


def status(s: Any, want: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (got := s.api("GET", "/workflows/flow/instances/i1")["result"])["status"] != want:
        assert time.monotonic() < deadline, got["status"]
        time.sleep(0.05)
    return got


def test_a_stream_joined_after_a_restart_follows_the_new_run_live(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/flow/instances", json={"id": "i1"})["success"]
    status(s, "waiting")
    assert s.api("PATCH", "/workflows/flow/instances/i1/status", json={"status": "terminate"})["success"]
    assert s.api("PATCH", "/workflows/flow/instances/i1/status", json={"status": "restart"})["success"]
    status(s, "waiting")

    # a reader joining now gets the first run up to its end, then the second one live
    url = f"{s.url}/cdn-cgi/edgelet/api/workflows/flow/instances/i1/subscribe"
    types: list[str] = []
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=30)) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                types.append(json.loads(line[6:])["type"])
                if types[-1] == "wait.started" and "workflow.terminated" in types:
                    s.api("POST", "/workflows/flow/instances/i1/events/go", json=2)
    assert types == ["workflow.queued", *RUN[:5], "workflow.terminated", *RUN]
    assert s.api("GET", "/workflows/flow/instances/i1")["result"]["output"] == 2
    # a Worker's subscribe() tells the same story and ends by itself
    assert json.loads(s.get("/i1").text) == types


def test_every_reader_shows_both_runs_of_a_restarted_finished_instance(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/flow/instances", json={"id": "i1"})["success"]
    status(s, "waiting")
    s.api("POST", "/workflows/flow/instances/i1/events/go", json=1)
    first_end = status(s, "complete")["end"]
    assert s.api("PATCH", "/workflows/flow/instances/i1/status", json={"status": "restart"})["success"]
    # the restart gives the event its erased wait took back, so the new run completes at once
    deadline = time.monotonic() + 20
    while (got := s.api("GET", "/workflows/flow/instances/i1")["result"])["end"] in (first_end, None):
        assert time.monotonic() < deadline, got["status"]
        time.sleep(0.05)
    both = ["workflow.queued", *RUN, *RUN]

    url = f"{s.url}/cdn-cgi/edgelet/api/workflows/flow/instances/i1/subscribe"
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=30)) as resp:
        sse = [json.loads(line[6:])["type"] for line in resp.iter_lines() if line.startswith("data: ")]
    assert sse == both
    tail = subprocess.run([*EDGELET, "workflows", "instances", "tail", "flow", "i1", "--json",
                           "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["type"] for line in tail.stdout.splitlines()] == both
    assert json.loads(s.get("/i1").text) == both


def test_ctrl_c_ends_event_streams_cleanly_and_promptly(dev: Any) -> None:
    """A stream on a waiting instance held Ctrl-C until uvicorn's 5 s grace ran out, then
    printed "Exception in ASGI application" and cut the client off mid-body."""
    import os
    import signal
    import threading

    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/flow/instances", json={"id": "i1"})["success"]
    status(s, "waiting")
    tail = subprocess.Popen([*EDGELET, "workflows", "instances", "tail", "flow", "i1", "--port", str(s.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=s.cwd)
    lines: list[str] = []
    ended: list[BaseException | None] = []

    def read() -> None:
        url = f"{s.url}/cdn-cgi/edgelet/api/workflows/flow/instances/i1/subscribe"
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as resp:
                lines.extend(resp.iter_lines())
            ended.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            ended.append(exc)

    printed: list[str] = []

    def read_cli() -> None:
        assert tail.stdout is not None
        printed.extend(iter(tail.stdout.readline, ""))

    reader = threading.Thread(target=read)
    reader.start()
    cli_reader = threading.Thread(target=read_cli)
    cli_reader.start()
    deadline = time.monotonic() + 30  # both streams attached and caught up
    while not (any(line.startswith("event: wait.started") for line in lines)
               and any("wait.started" in line for line in printed)):
        assert time.monotonic() < deadline, (lines, printed)
        time.sleep(0.05)
    assert s.proc is not None
    started = time.monotonic()
    os.killpg(s.proc.pid, signal.SIGINT)
    assert s.proc.wait(15) == 0
    took = time.monotonic() - started
    reader.join(10)
    tail.wait(10)
    cli_reader.join(10)
    assert tail.stderr is not None
    out, err = "".join(printed), tail.stderr.read()
    assert took < 5.0, f"edgelet dev took {took:.1f} s to stop"  # uvicorn gives up at 5 s
    assert "Traceback" not in s.logs() and "Exception in ASGI" not in s.logs(), s.logs()
    assert ended == [None]  # a complete body, not a cut-off one
    assert lines[-2].startswith(": edgelet dev is stopping")
    assert tail.returncode == 0, err
    assert err.strip() == "edgelet dev stopped; tail ends" and "wait.started" in out
