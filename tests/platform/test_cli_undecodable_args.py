"""Command-line values that are not UTF-8 (bytes a terminal passed, a JSON lone surrogate):
a usage error naming the parameter, or the server's 400, never a traceback; nothing stored."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conftest import EDGELET

CONFIG = """
name = "app"
main = "app.py"
kv_namespaces = [{ binding = "CACHE", id = "cache" }]
queues.producers = [{ binding = "JOBS", queue = "jobs" }]
workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
"""
APP = """
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_event("go", "go")

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
"""
BAD = b"caf\xe9"  # Latin-1, as a terminal in another locale sends it


def run(server: Any, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGELET, *args, "--port", str(server.port)], cwd=server.cwd,
                          capture_output=True, text=True, timeout=60)


def test_bytes_that_are_not_utf8_are_a_usage_error_naming_the_parameter(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    inst = s.api("POST", "/workflows/flow/instances", json={"instance_id": "i1"})["result"]["id"]
    cases = [
        (["queues", "send", "jobs", BAD, "--content-type", "text"], "'BODY'"),
        (["kv", "key", "put", BAD, "v", "--binding", "CACHE"], "'KEY'"),
        (["kv", "key", "put", "k", BAD, "--binding", "CACHE"], "'[VALUE]'"),
        (["workflows", "trigger", "flow", b'{"name": "' + BAD + b'"}'], "'[PARAMS]'"),
        (["workflows", "instances", "send-event", "flow", inst, "--type", "go", "--payload",
          b'"' + BAD + b'"'], "'--payload'"),
    ]
    for args, name in cases:
        result = run(s, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"Invalid value for {name}: it is not UTF-8 text (byte 0xe9 at character" in result.stderr
        assert "iconv" in result.stderr  # what to do
    # nothing was stored on the way
    queue = next(q for q in s.api("GET", "/queues")["result"] if q["name"] == "jobs")
    assert queue["backlog"] == 0
    assert s.api("GET", "/kv/CACHE/keys")["result"] == []
    assert [i["id"] for i in s.api("GET", "/workflows/flow/instances")["result"]] == ["i1"]
    assert s.api("GET", "/workflows/flow/instances/i1")["result"]["status"] == "waiting"


def test_a_json_lone_surrogate_gets_the_servers_400_not_a_traceback(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    for args in (["workflows", "trigger", "flow", '"\\ud800"'], ["queues", "send", "jobs", '"\\ud800"']):
        result = run(s, *args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "(code 10400)" in result.stderr
    # a real non-ASCII character still travels intact
    result = run(s, "workflows", "trigger", "flow", '{"name": "café 😀"}', "--id", "u1")
    assert result.returncode == 0, result.stderr
    assert s.api("GET", "/workflows/flow/instances/u1")["result"]["params"] == {"name": "café 😀"}


def test_a_path_that_is_not_utf8_is_still_a_path(tmp_path: Path) -> None:
    """Paths are exempt: a file name may be any bytes; the error is the missing file's."""
    result = subprocess.run([*EDGELET, "dev", "-c", b"missing-\xe9.toml", "--in-memory"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "configuration file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_values_too_deep_or_not_finite_are_usage_errors(dev: Any) -> None:
    """They were a RecursionError traceback (deep) or a 400 from the server (NaN)."""
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    inst = s.api("POST", "/workflows/flow/instances", json={"instance_id": "i1"})["result"]["id"]
    deep = "[" * 5000 + "]" * 5000
    for value, says in ((deep, "nests arrays/objects more than 128 levels deep; flatten it"),
                        ("NaN", "NaN is not a JSON number")):
        for args, name in ((["workflows", "trigger", "flow", value], "PARAMS"),
                           (["workflows", "instances", "send-event", "flow", inst, "--type", "go",
                             "--payload", value], "--payload"),
                           (["queues", "send", "jobs", value], "BODY"),
                           (["kv", "key", "put", "k", "v", "--binding", "CACHE", "--metadata", value],
                            "--metadata")):
            result = run(s, *args)
            assert result.returncode == 2, (args[:3], result.stderr[-300:])
            assert "Traceback" not in result.stderr
            assert f"Invalid value for {name}: not valid JSON" in result.stderr and says in result.stderr
    assert [i["id"] for i in s.api("GET", "/workflows/flow/instances")["result"]] == ["i1"]
    assert s.api("GET", "/kv/CACHE/keys")["result"] == []
