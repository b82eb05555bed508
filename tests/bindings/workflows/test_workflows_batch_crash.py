"""Workflows survive SIGKILL of the whole ``edgelet dev`` process group during ``createBatch``
and during retries with backoff: no partial batch, no lost acknowledged batch, no recorded
step or attempt run again.

Style of tests/test_workflows_crash.py: the real ``edgelet dev`` with a state folder, killed
(host and isolates, the whole group) and started again on the same folder.
"""

from __future__ import annotations

import random
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from crash import APPEND, ARGS, Sender, kill_group, restart, wait_until
from test_workflows_crash import describe

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "job", binding = "JOB", class_name = "Job" },
      { name = "flaky", binding = "FLAKY", class_name = "Flaky" },
    ]
"""

APP = """
    import os, uuid
    from urllib.parse import urlsplit
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
""" + textwrap.indent(APPEND, "    ") + """
    class Job(WorkflowEntrypoint):
        async def run(self, event, step):
            me, log = event.instanceId, event.payload["log"]

            @step.do("work")
            async def work():
                token = uuid.uuid4().hex
                append(log, f"{me} {token}")
                return token
            return await work()

    class Flaky(WorkflowEntrypoint):
        async def run(self, event, step):
            me, log = event.instanceId, event.payload["log"]

            @step.do("before")
            async def before():
                append(log, f"{me} before")
                return "b"

            config = {"retries": {"limit": 3, "delay": "1 second", "backoff": "exponential"}}

            @step.do("flaky", config=config)
            async def flaky(ctx):
                append(log, f"{me} flaky {ctx.attempt}")
                if ctx.attempt < 3:
                    raise RuntimeError(f"attempt {ctx.attempt} fails")
                return ctx.attempt

            await before()
            return await flaky()

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            parts = urlsplit(request.url).path.strip("/").split("/")
            if parts[0] == "batch":   # /batch/<k>/<size>/<log>
                k, size, log = parts[1], int(parts[2]), "/" + "/".join(parts[3:])
                await self.env.JOB.createBatch(
                    [{"id": f"b{k}-{i}", "params": {"log": log}} for i in range(size)])
                return Response("created")
            return Response("not found", status=404)
"""


def all_instances(s: Any, workflow: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = s.api("GET", f"/workflows/{workflow}/instances?per_page=1000&page={page}")
        assert body["success"], body
        out += body["result"]
        if len(body["result"]) < 1000:
            return out
        page += 1


def wait_all(s: Any, workflow: str, ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: r["status"] for r in all_instances(s, workflow) if r["id"] in ids}
        left = {i for i in ids if rows.get(i) != "complete"}
        assert not any(rows.get(i) in ("errored", "terminated") for i in left), rows
        if not left:
            return
        assert time.monotonic() < deadline, f"{len(left)} not complete, e.g. {sorted(left)[:3]}\n{s.logs()[-2000:]}"
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_during_create_batch_leaves_whole_batches_only(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    size, kills = 40, 3
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    # a batch whose request was in flight when the platform died is in sender.cut
    sender = Sender(lambda k: f"/batch/{k}/{size}{log}")
    acked, cut = sender.acked, sender.cut
    rng = random.Random(77)
    for _ in range(kills):
        with sender.running(s):
            wait_until(lambda: len(acked) >= 2 + len(cut), timeout=60, what=s.logs)
            time.sleep(rng.uniform(0, 0.08))
            kill_group(s)
        s = restart(dev, s)

    rows = all_instances(s, "job")
    per_batch: dict[int, int] = defaultdict(int)
    for row in rows:
        per_batch[int(row["id"][1:].split("-")[0])] += 1
    assert all(n == size for n in per_batch.values()), f"partial batch: {dict(per_batch)}"
    assert acked <= set(per_batch), f"acknowledged batches lost: {sorted(acked - set(per_batch))}"
    assert cut, "no kill landed while a createBatch was in flight; the test proved nothing"

    ids = {row["id"] for row in rows}
    wait_all(s, "job", ids, timeout=90)
    tokens: dict[str, list[str]] = defaultdict(list)
    for line in log.read_text().splitlines():
        instance_id, token = line.split()
        tokens[instance_id].append(token)
    for instance_id in sorted(ids)[:: max(1, len(ids) // 40)]:  # describe a sample of them
        info = describe(s, "job", instance_id)
        # the recorded result is the last attempt's: once recorded, the step never ran again
        assert tokens[instance_id][-1] == info["output"], (instance_id, tokens[instance_id])
    assert all(len(t) <= 1 + kills for t in tokens.values())
    print(f"createBatch x{size}: {len(acked)} acknowledged, {len(cut)} cut by a kill, {len(per_batch)} stored "
          f"whole, {len(ids)} instances, {sum(len(t) - 1 for t in tokens.values())} attempts cut and re-run")


def test_kill_during_retry_backoff_never_reruns_a_recorded_attempt(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    ids = [f"f{i}" for i in range(3)]
    for instance_id in ids:
        body = s.api("POST", "/workflows/flaky/instances", json={"instance_id": instance_id,
                                                                 "params": {"log": str(log)}})
        assert body["success"], body
    for failed in (1, 2):  # kill while every instance waits out the backoff after attempt `failed`
        deadline = time.monotonic() + 20
        while True:
            steps = [describe(s, "flaky", i)["steps"] for i in ids]
            flaky = [next((st for st in st_list if st["name"] == "flaky"), None) for st_list in steps]
            if all(f is not None and len(f["attempts"]) == failed and f.get("next_attempt") for f in flaky):
                break
            assert time.monotonic() < deadline, f"not all retrying after attempt {failed}: {flaky}"
            time.sleep(0.02)
        kill_group(s)
        s = restart(dev, s)

    deadline = time.monotonic() + 30
    for instance_id in ids:
        while (info := describe(s, "flaky", instance_id))["status"] != "complete":
            assert info["status"] not in ("errored", "terminated"), info
            assert time.monotonic() < deadline, info
            time.sleep(0.05)
        assert info["output"] == 3
        flaky = next(st for st in info["steps"] if st["name"] == "flaky")
        assert [a["success"] for a in flaky["attempts"]] == [False, False, True]
    runs: dict[str, list[str]] = defaultdict(list)
    for line in log.read_text().splitlines():
        instance_id, what = line.split(" ", 1)
        runs[instance_id].append(what)
    for instance_id in ids:
        # "before" was recorded before the first kill: it never ran again; each attempt ran once
        assert runs[instance_id] == ["before", "flaky 1", "flaky 2", "flaky 3"], runs[instance_id]
