"""``restart`` options are checked before anything is erased: a misspelt option, an empty or
non-string step name is an error naming it (it used to restart from the top, erasing the
whole history, or leak SQLite's "Error binding parameter"), and the dict form works. Also
an id given twice, as ``instance_id`` and ``id``, that differ is refused."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
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
            return (await step.wait_for_event("go", "go", timeout="1 hour")).payload

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            inst = await self.env.FLOW.get("i1")
            kind = request.url.rsplit("/", 1)[1]
            try:
                if kind == "typo":
                    await inst.restart(fromstep="go")
                elif kind == "empty":
                    await inst.restart(from_step="")
                elif kind == "number":
                    await inst.restart(from_step=5)
                elif kind == "dict":
                    await inst.restart({"fromStep": "go"})
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=400)
            return Response("restarted")
"""


def steps(s: Any) -> list[tuple[str, str, bool]]:
    got = s.api("GET", "/workflows/flow/instances/i1")["result"]
    return [(st["name"], st["start"], st["finished"]) for st in got["steps"]]


@pytest.fixture
def server(dev: Any) -> Any:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, "--in-memory")
    assert s.api("POST", "/workflows/flow/instances", json={"id": "i1"})["success"]
    deadline = time.monotonic() + 20
    while s.api("GET", "/workflows/flow/instances/i1")["result"]["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return s


def test_bad_restart_options_are_refused_and_erase_nothing(server: Any) -> None:
    s = server
    before = steps(s)
    assert [(name, done) for name, _, done in before] == [("one", True), ("go", False)]
    assert s.get("/typo").text == ("TypeError: restart() got unknown option(s) ['fromstep']; use "
                                   "from_step=NAME (or fromStep), or no option to restart from the top")
    assert s.get("/empty").text.startswith("ValueError: restart from_step must not be empty")
    assert s.get("/number").text == "TypeError: restart from_step must be a step name (a string), got int"
    url = "/workflows/flow/instances/i1/status"
    for body, says in [({"status": "restart", "from_step": ""}, "must not be empty"),
                       ({"status": "restart", "from_step": 5}, "got int"),
                       ({"status": "restart", "fromstep": "go"}, "unknown option(s) ['fromstep']"),
                       ({"status": "pause", "from_step": "go"}, "unknown field(s) ['from_step'] for 'pause'")]:
        answer = s.api("PATCH", url, json=body)
        assert not answer["success"] and says in answer["errors"][0]["message"], answer
    cli = subprocess.run([*EDGELET, "workflows", "instances", "restart", "flow", "i1", "--from-step", "",
                          "--port", str(s.port)], capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert cli.returncode == 1 and "restart from_step must not be empty" in cli.stderr
    # nothing was erased: the first step's record (its start time too) is the same one
    after = s.api("GET", "/workflows/flow/instances/i1")["result"]
    assert steps(s) == before and after["status"] == "waiting"


def test_the_dict_form_restarts_from_that_step(server: Any) -> None:
    s = server
    first = s.api("GET", "/workflows/flow/instances/i1")["result"]["steps"][0]
    assert s.get("/dict").text == "restarted"
    deadline = time.monotonic() + 20
    while (got := s.api("GET", "/workflows/flow/instances/i1")["result"])["status"] != "waiting" \
            or len(got["steps"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert got["steps"][0] == first  # kept: the restart was from 'go'


def test_an_id_given_twice_that_differs_is_refused(server: Any) -> None:
    s = server
    for path, body in [("/workflows/flow/instances", {"id": "a", "instance_id": "b"}),
                       ("/workflows/flow/instances/batch", {"instances": [{"id": "a", "instance_id": "b"}]})]:
        answer = s.api("POST", path, json=body)
        assert not answer["success"]
        assert answer["errors"][0]["message"] == ("the instance id is given twice, as instance_id 'b' and "
                                                  "id 'a'; send one of them")
    assert s.api("POST", "/workflows/flow/instances", json={"id": "c", "instance_id": "c"})["success"]
    ids = sorted(i["id"] for i in s.api("GET", "/workflows/flow/instances")["result"])
    assert ids == ["c", "i1"]
