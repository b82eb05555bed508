"""SIGKILL while the isolate commits its own fast steps (bindings/workflows/local.py): no
recorded step runs again, none is lost, and every instance completes with the results
that were recorded.

Style of test_workflows_crash.py: the real ``edgelet dev`` with a state folder, killed
(the whole process group, or the host alone) and started again on the same folder. Its
steps take milliseconds, under the moment after which an attempt is noted on the host,
so each is committed by the isolate, not by the host.
"""

from __future__ import annotations

import random
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from crash import APPEND, ARGS, kill_group, lines, restart
from test_workflows_crash import create, wait_status

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "quick", binding = "QUICK", class_name = "Quick" }]
"""

APP = """
    import asyncio, os, time, uuid
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
""" + textwrap.indent(APPEND, "    ") + """
    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            me, log = event.instanceId, event.payload["log"]
            tokens = []
            for i in range(event.payload["steps"]):
                @step.do(f"s{i}")
                def work():
                    token = uuid.uuid4().hex
                    append(log, f"{me} s{i} {token}")   # the side effect of this attempt
                    time.sleep(0.002)                     # a kill may land before the commit
                    return token
                tokens.append(await work())
                await asyncio.sleep(0.003)
            return tokens

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def test_kill_9_while_the_isolate_commits_fast_steps(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    ids, steps, kills = [f"q{i}" for i in range(6)], 40, 4
    for instance_id in ids:
        create(s, "quick", instance_id, {"log": str(log), "steps": steps})
    rng = random.Random(2026)
    for k in range(kills):
        target = len(lines(log)) + rng.randint(5, 30)
        deadline = time.monotonic() + 20
        while len(lines(log)) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        if k % 2:
            s.kill()          # the host alone: its isolate dies with it
            s.proc.wait(10)
        else:
            kill_group(s)     # host, fork server and isolate at once
        s = restart(dev, s)
    results = {i: wait_status(s, "quick", i, "complete", timeout=60) for i in ids}

    attempts: dict[tuple[str, str], list[str]] = defaultdict(list)
    reached: dict[str, int] = defaultdict(int)
    for line in log.read_text().splitlines():
        instance_id, step, token = line.split()
        attempts[(instance_id, step)].append(token)
        # nothing is answered before it is durable: once the run went on to step k, no step
        # before k runs again (only the one in flight at a kill may)
        assert int(step[1:]) >= reached[instance_id], (instance_id, step, reached[instance_id])
        reached[instance_id] = int(step[1:])
    reran = 0
    for instance_id, info in results.items():
        recorded = {st["name"]: st["output"] for st in info["steps"]}
        assert sorted(recorded) == sorted(f"s{k}" for k in range(steps)), "a recorded step is missing"
        assert info["output"] == [recorded[f"s{k}"] for k in range(steps)]
        for k in range(steps):
            tokens = attempts[(instance_id, f"s{k}")]
            # the recorded result came from the LAST attempt: once recorded, a step never ran again
            assert tokens and tokens[-1] == recorded[f"s{k}"], (instance_id, k, tokens)
            assert len(tokens) <= 1 + kills, (instance_id, k, tokens)
            reran += len(tokens) - 1
    assert reran >= 1, "no kill landed inside a step; the test proved nothing"
