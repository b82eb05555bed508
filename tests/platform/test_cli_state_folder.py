"""The CLIs that read the state folder when no `edgelet dev` answers default to the folder dev
uses: `.edgelet/state` beside the config file, found from a project's subfolder as dev finds
it (they used to read `./.edgelet/state` under the subfolder: empty lists, "no state"
errors, and a stray database left there by a refused write)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conftest import EDGELET, free_port

CONFIG = """
name = "app"
main = "app.py"
kv_namespaces = [{ binding = "CACHE", id = "cache" }]
queues.producers = [{ binding = "JOBS", queue = "jobs" }]
workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
d1_databases = [{ binding = "DB", database_name = "main" }]
"""
APP = """
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_event("go", "go")

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.env.DB.prepare("CREATE TABLE IF NOT EXISTS t (x)").run()
        await self.env.JOBS.send("hello")
        return Response("ok")
"""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGELET, *args, "--port", str(free_port())], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_offline_clis_in_a_subfolder_read_the_projects_state(dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    assert s.get("/").text == "ok"
    assert s.api("POST", "/workflows/flow/instances", json={"id": "w1"})["success"]
    assert s.api("PUT", "/kv/CACHE/values/greeting", content=b"hi")["success"]
    s.stop()
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)

    listed = cli(sub, "workflows", "instances", "list", "flow")
    assert listed.returncode == 0, listed.stderr
    assert "w1" in listed.stdout
    assert f"reading the state folder {tmp_path / '.edgelet' / 'state'} directly" in listed.stderr
    got = cli(sub, "kv", "key", "get", "greeting", "--binding", "CACHE")
    assert got.returncode == 0 and got.stdout == "hi", got.stderr
    queues = cli(sub, "queues", "list", "--json")
    assert queues.returncode == 0 and '"backlog": 1' in queues.stdout, queues.stderr
    d1 = cli(sub, "d1", "list", "--json")
    assert d1.returncode == 0 and '"name": "main"' in d1.stdout, d1.stderr
    assert not (sub / ".edgelet").exists() and not (tmp_path / "src" / ".edgelet").exists()

    # an explicit --persist-to is still taken from where the command runs
    other = cli(sub, "workflows", "list", "--persist-to", "elsewhere")
    assert other.returncode == 1 and "no workflow state at" in other.stderr


def test_a_refused_offline_kv_put_leaves_no_state_behind(tmp_path: Path) -> None:
    result = cli(tmp_path, "kv", "key", "put", "k", "v", "--binding", "NOPE")
    assert result.returncode == 1
    assert "no KV namespace or binding named 'NOPE'" in result.stderr
    assert not (tmp_path / ".edgelet").exists()


def test_a_cli_on_the_wrong_port_is_told_the_port_of_this_projects_dev(dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    sub = tmp_path / "src"
    sub.mkdir()
    for args in (["workflows", "trigger", "flow"], ["tail"], ["queues", "send", "jobs", '"x"']):
        result = cli(sub, *args)
        assert result.returncode == 1, result.stderr
        assert f"listens on 127.0.0.1:{s.port}: pass --port {s.port}" in result.stderr
        assert "Traceback" not in result.stderr
    assert s.api("GET", "/workflows/flow/instances")["result"] == []  # nothing reached it
