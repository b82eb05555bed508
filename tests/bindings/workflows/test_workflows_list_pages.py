"""`edgelet workflows instances list` says when there are more instances than the page it
shows (it printed the first 50 of any number as if they were all), online and offline."""

from __future__ import annotations

import subprocess
from typing import Any

from conftest import EDGELET, free_port
from test_workflows_support import FLOW_CONFIG

CONFIG = FLOW_CONFIG
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            return 1

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def listing(s: Any, *args: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGELET, "workflows", "instances", "list", "flow", *args,
                           "--port", str(port or s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)


def test_a_partial_page_says_how_many_there_are_and_how_to_get_more(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    assert s.api("POST", "/workflows/flow/instances", json=[{"id": f"i{n:02}"} for n in range(7)])["success"]
    first = listing(s, "--per-page", "3")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 4  # header + 3
    assert first.stderr.strip() == "instances 1-3 of 7; pass --page 2 for the next 3"
    last = listing(s, "--per-page", "3", "--page", "3")
    assert last.stderr.strip() == "instances 7-7 of 7"
    beyond = listing(s, "--per-page", "3", "--page", "9", "--json")
    assert beyond.stdout.strip() == "[]" and beyond.stderr.strip() == "no instances on page 9 (7 in all)"
    whole = listing(s)
    assert whole.stderr == "" and len(whole.stdout.splitlines()) == 8  # all on one page: no note
    s.stop()
    offline = listing(s, "--per-page", "5", port=free_port())
    assert "instances 1-5 of 7; pass --page 2 for the next 2" in offline.stderr
