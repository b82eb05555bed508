"""Instance ids Cloudflare reserves (``batch``, ``terminate``, ``terminateAll``: they name its
REST routes) are refused as Cloudflare refuses them, from a Worker, the API and the CLI, so an
app that works here does not fail once deployed; nothing is created."""

from __future__ import annotations

import subprocess
from typing import Any

from conftest import EDGELET
from test_workflows_support import FLOW_CONFIG

CONFIG = FLOW_CONFIG
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            return 1

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            try:
                await self.env.FLOW.create(id=request.url.rsplit("/", 1)[1])
            except ValueError as exc:
                return Response(str(exc), status=400)
            return Response("created")
"""


def test_reserved_instance_ids_are_refused_everywhere(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    for reserved in ("batch", "terminate", "terminateAll"):
        says = (f"invalid instance id '{reserved}' for workflow 'flow': 'batch', 'terminate', "
                f"'terminateAll' are reserved by Cloudflare (they name API routes); choose another id")
        resp = s.get(f"/{reserved}")
        assert resp.status_code == 400 and resp.text == says.replace(" for workflow 'flow'", "")
        answer = s.api("POST", "/workflows/flow/instances", json={"instance_id": reserved})
        assert not answer["success"] and answer["errors"][0]["message"] == says
        cli = subprocess.run([*EDGELET, "workflows", "trigger", "flow", "--id", reserved, "--port", str(s.port)],
                             capture_output=True, text=True, timeout=30, cwd=s.cwd)
        assert cli.returncode == 1 and says in cli.stderr
    assert s.api("GET", "/workflows/flow/instances")["result"] == []
    # a near miss is a valid id
    assert s.get("/batch2").text == "created"
