"""``sensitive: "output"``: the step's result is stored and replayed, but the API, the CLI,
describe and the log show ``[REDACTED]`` (a real ``edgelet dev`` over HTTP)."""

from __future__ import annotations

import subprocess
import time

from conftest import EDGELET

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "vault", binding = "VAULT", class_name = "Vault" }]
"""
APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Vault(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do(config={"sensitive": "output"})
            async def token():
                return "sk-" + event.payload["seed"] * 3

            @step.do()
            async def public(token):            # gets the stored secret, also on replay
                return len(token)

            secret = await token()
            await step.sleep("pause", "1 second")   # the rest runs in a replay
            return {"length": await public(), "same": secret == await token()}

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def test_sensitive_output_is_replayed_but_redacted_everywhere(dev) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory", "--log-level", "debug")
    created = s.api("POST", "/workflows/vault/instances", json={"id": "v1", "params": {"seed": "zq7"}})
    assert created["success"], created
    deadline = time.monotonic() + 20
    while (info := s.api("GET", "/workflows/vault/instances/v1")["result"])["status"] != "complete":
        assert info["status"] not in ("errored", "terminated"), info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)
    assert info["output"] == {"length": 12, "same": True}
    token = next(st for st in info["steps"] if st["name"] == "token")
    assert token["output"] == "[REDACTED]" and token["config"]["sensitive"] == "output"
    assert next(st for st in info["steps"] if st["name"] == "public")["output"] == 12

    result = subprocess.run([*EDGELET, "workflows", "instances", "describe", "vault", "v1", "--json",
                             "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert result.returncode == 0, result.stderr
    table = subprocess.run([*EDGELET, "workflows", "instances", "describe", "vault", "v1",
                            "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    for text in (result.stdout, table.stdout, s.logs()):
        assert "sk-zq7zq7zq7" not in text  # (the params hold the seed, not the token)
    assert "[REDACTED]" in result.stdout and "[REDACTED]" in table.stdout


def test_bad_sensitive_value_names_the_step_and_option(dev) -> None:
    app = APP.replace('{"sensitive": "output"}', '{"sensitive": "everything"}')
    s = dev({"wrangler_like.toml": CONFIG, "app.py": app}, "--in-memory")
    s.api("POST", "/workflows/vault/instances", json={"id": "v2", "params": {"seed": "x"}})
    deadline = time.monotonic() + 20
    while (info := s.api("GET", "/workflows/vault/instances/v2")["result"])["status"] != "errored":
        assert time.monotonic() < deadline, info
        time.sleep(0.05)
    assert "config of step 'token': sensitive must be \"output\"" in info["error"]["message"]
