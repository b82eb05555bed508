"""Workflows over real HTTP: the Worker binding, the control API, the CLI (online and offline)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIG = """
    [[workers]]
    name = "front"
    main = "front.py"
    workflows = [{ name = "orders", binding = "ORDERS", class_name = "Orders", script_name = "runner" }]

    [[workers]]
    name = "runner"
    main = "runner.py"
"""

FRONT = """
    import json
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("/", 3)[3].split("?")[0]
            parts = path.split("/")
            wf = self.env.ORDERS
            if parts[0] == "start":
                inst = await wf.create(id=parts[1], params={"qty": 2})
                return Response(inst.id)
            if parts[0] == "start-dict":
                inst = await wf.create({"params": {"qty": 5}})
                return Response(inst.id)
            if parts[0] == "batch":
                made = await wf.create_batch([{"id": "b-1", "params": {"qty": 1}}, {"id": "b-2"}])
                return Response(",".join(i.id for i in made))
            if parts[0] == "status":
                inst = await wf.get(parts[1])
                return Response.json(await inst.status())
            if parts[0] == "ship":
                inst = await wf.get(parts[1])
                await inst.send_event(type="shipped", payload={"carrier": "ups"})
                return Response("sent")
            if parts[0] == "errors":
                out = []
                for action in (lambda: wf.create(id="bad id"), lambda: wf.get("missing"),
                               lambda: wf.create(id=parts[1])):
                    try:
                        await action()
                        out.append("no error")
                    except Exception as exc:
                        out.append(f"{type(exc).__name__}: {exc}")
                return Response.json(out)
            return Response("?", status=404)
"""

RUNNER = """
    from workers import WorkflowEntrypoint, WorkerEntrypoint, Response

    class Orders(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("reserve")
            async def reserve(ctx):
                return {"reserved": event.payload["qty"] if event.payload else 0, "attempt": ctx.attempt}
            reserved = await reserve()
            shipped = await step.wait_for_event("wait for shipping", "shipped", timeout="1 hour")
            return {"reserved": reserved["reserved"], "carrier": shipped.payload["carrier"]}

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("runner")
"""

FILES = {"wrangler_like.toml": CONFIG, "front.py": FRONT, "runner.py": RUNNER}
ARGS = ("--persist-to", "state", "--log-level", "info", "--no-reload")


def wait_for(s: Any, instance_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = s.api("GET", f"/workflows/orders/instances/{instance_id}")
        assert body["success"], body
        if body["result"]["status"] == status:
            return body["result"]
        assert time.monotonic() < deadline, body["result"]
        time.sleep(0.03)


def cli(s: Any, *args: str, port: bool = True) -> subprocess.CompletedProcess[str]:
    extra = ["--port", str(s.port)] if port else []
    return subprocess.run([sys.executable, "-m", "edgelet.cli", "workflows", *args, *extra], cwd=s.cwd,
                          capture_output=True, text=True, timeout=60)


def test_worker_binding_over_http(dev: Any) -> None:
    s = dev(FILES, *ARGS)
    assert s.get("/start/o-1").text == "o-1"
    wait_for(s, "o-1", "waiting")
    status = s.get("/status/o-1").json()
    assert status == {"status": "waiting", "error": None, "output": None}
    assert s.get("/ship/o-1").text == "sent"
    wait_for(s, "o-1", "complete")
    assert s.get("/status/o-1").json()["output"] == {"reserved": 2, "carrier": "ups"}
    generated = s.get("/start-dict").text
    assert len(generated) == 36
    assert s.get("/batch").text == "b-1,b-2"
    errors = s.get("/errors/o-1").json()
    assert errors[0].startswith("ValueError: invalid instance id 'bad id'")
    assert errors[1].startswith("LookupError: workflow 'orders' has no instance 'missing'")
    assert errors[2].startswith("ValueError: instance id 'o-1' is already in use")
    logs = s.logs()
    assert "WORKFLOW orders/o-1 step 'reserve' #1 ok (" in logs
    assert "WORKFLOW orders/o-1 running -> complete" in logs


def test_control_api(dev: Any) -> None:
    s = dev(FILES, *ARGS)
    listed = s.api("GET", "/workflows")
    assert listed["success"] and listed["result"][0]["name"] == "orders"
    assert listed["result"][0]["class_name"] == "Orders" and listed["result"][0]["script_name"] == "runner"
    created = s.api("POST", "/workflows/orders/instances", json={"instance_id": "api-1", "params": {"qty": 3}})
    assert created["success"] and created["result"]["id"] == "api-1"
    batch = s.api("POST", "/workflows/orders/instances", json=[{"instance_id": "api-2"}, {"params": {"qty": 1}}])
    assert [r["status"] for r in batch["result"]] == ["queued", "queued"]
    batch2 = s.api("POST", "/workflows/orders/instances/batch", json=[{"instance_id": "api-3"}])
    assert batch2["result"][0]["id"] == "api-3"
    info = wait_for(s, "api-1", "waiting")
    assert info["params"] == {"qty": 3} and info["queued"].endswith("Z")
    reserve = info["steps"][0]
    assert reserve["type"] == "step" and reserve["name"] == "reserve" and reserve["count"] == 1
    assert reserve["success"] is True and reserve["output"] == {"reserved": 3, "attempt": 1}
    assert reserve["attempts"][0]["success"] is True and reserve["config"]["retries"]["limit"] == 5
    assert info["steps"][1]["type"] == "waitForEvent" and info["steps"][1]["finished"] is False

    page = s.api("GET", "/workflows/orders/instances?per_page=2&page=1")
    assert page["result_info"] == {"page": 1, "per_page": 2, "count": 2, "total_count": 4}
    assert page["result"][0]["id"] == "api-3"  # newest first
    for iid in ("api-2", "api-3"):
        wait_for(s, iid, "waiting")
    waiting = s.api("GET", "/workflows/orders/instances?status=waiting")
    assert {r["id"] for r in waiting["result"]} >= {"api-1", "api-2", "api-3"}

    assert s.api("PATCH", "/workflows/orders/instances/api-2/status", json={"status": "pause"})["result"][
        "status"] == "paused"
    assert s.api("PATCH", "/workflows/orders/instances/api-2/status", json={"status": "resume"})["success"]
    assert s.api("PATCH", "/workflows/orders/instances/api-3/status", json={"status": "terminate"})["result"][
        "status"] == "terminated"
    again = s.api("PATCH", "/workflows/orders/instances/api-3/status", json={"status": "terminate"})
    assert not again["success"] and again["errors"][0]["code"] == 10409
    assert "already terminated" in again["errors"][0]["message"]

    sent = s.api("POST", "/workflows/orders/instances/api-1/events/shipped", json={"carrier": "dhl"})
    assert sent["success"], sent
    assert wait_for(s, "api-1", "complete")["output"] == {"reserved": 3, "carrier": "dhl"}
    restarted = s.api("PATCH", "/workflows/orders/instances/api-1/status",
                      json={"status": "restart", "from_step": "wait for shipping"})
    assert restarted["success"], restarted
    # the event taken by the erased wait is delivered again to the restarted run
    assert wait_for(s, "api-1", "complete")["output"] == {"reserved": 3, "carrier": "dhl"}
    summary = s.api("GET", "/workflows/orders")["result"]
    assert summary["instances"]["complete"] == 1 and summary["instances"]["terminated"] == 1

    for method, path, body, status, words in [
        ("GET", "/workflows/nope", None, 404, "unknown workflow 'nope'"),
        ("POST", "/workflows/nope/instances", {}, 404, "unknown workflow"),
        ("GET", "/workflows/orders/instances/ghost", None, 404, "no instance 'ghost'"),
        ("POST", "/workflows/orders/instances", {"instance_id": "bad id!"}, 400, "invalid instance id"),
        ("POST", "/workflows/orders/instances", {"instance_id": "api-1"}, 409, "already in use"),
        ("POST", "/workflows/orders/instances/api-2/events/bad%20type", {}, 400, "invalid event type"),
        ("POST", "/workflows/orders/instances/api-3/events/shipped", {}, 409, "it is terminated"),
        ("PATCH", "/workflows/orders/instances/api-2/status", {"status": "explode"}, 400, "unknown status"),
        ("GET", "/workflows/orders/instances?status=sleepy", None, 400, "unknown status"),
    ]:
        resp = s.request(method, f"/cdn-cgi/edgelet/api{path}", json=body)
        data = resp.json()
        assert resp.status_code == status and not data["success"], (path, resp.status_code, data)
        assert words in data["errors"][0]["message"], data


def test_cli_online_and_offline(dev: Any) -> None:
    s = dev(FILES, *ARGS)
    out = cli(s, "trigger", "orders", '{"qty": 7}', "--id", "cli-1")
    assert out.returncode == 0 and "Created instance cli-1" in out.stdout, out.stderr
    wait_for(s, "cli-1", "waiting")
    listed = cli(s, "list")
    assert "orders" in listed.stdout and "Orders" in listed.stdout
    assert "WAITING" in listed.stdout
    inst = cli(s, "instances", "list", "orders", "--status", "waiting", "--json")
    assert [r["id"] for r in json.loads(inst.stdout)] == ["cli-1"]
    described = cli(s, "instances", "describe", "orders", "latest")
    assert described.returncode == 0, described.stderr
    assert "Instance:  cli-1" in described.stdout and "reserve" in described.stdout
    assert "wait for shipping" in described.stdout and "waiting" in described.stdout
    assert '{"reserved":7,"attempt":1}' in described.stdout
    for action in ("pause", "resume"):
        done = cli(s, "instances", action, "orders", "cli-1")
        assert done.returncode == 0, done.stderr
    sent = cli(s, "instances", "send-event", "orders", "cli-1", "--type", "shipped",
               "--payload", '{"carrier": "cli"}')
    assert sent.returncode == 0, sent.stderr
    assert wait_for(s, "cli-1", "complete")["output"]["carrier"] == "cli"
    restarted = cli(s, "instances", "restart", "orders", "cli-1", "--from-step", "wait for shipping")
    assert restarted.returncode == 0 and "cli-1" in restarted.stdout, restarted.stderr
    wait_for(s, "cli-1", "complete")
    failed = cli(s, "instances", "terminate", "orders", "cli-1")
    assert failed.returncode != 0 and "already complete" in failed.stderr
    bad = cli(s, "trigger", "orders", "{not json")
    assert bad.returncode != 0 and "not valid JSON" in bad.stderr

    s.stop()  # offline: the same reads come from the state folder
    port = str(s.port)
    offline = subprocess.run([sys.executable, "-m", "edgelet.cli", "workflows", "instances", "describe",
                              "orders", "cli-1", "--port", port, "--persist-to", "state"], cwd=s.cwd,
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 0, offline.stderr
    assert "Status:    complete" in offline.stdout and "reserve" in offline.stdout
    offline_list = subprocess.run([sys.executable, "-m", "edgelet.cli", "workflows", "list", "--port", port,
                                   "--persist-to", "state"], cwd=s.cwd, capture_output=True, text=True,
                                  timeout=60)
    assert "orders" in offline_list.stdout, offline_list.stderr
    no_state = subprocess.run([sys.executable, "-m", "edgelet.cli", "workflows", "list", "--port", port,
                               "--persist-to", str(Path(s.cwd) / "nowhere")], cwd=s.cwd, capture_output=True,
                              text=True, timeout=60)
    assert no_state.returncode != 0 and "no workflow state" in no_state.stderr
