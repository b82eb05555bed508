"""Saga rollbacks survive ``kill -9``: a rollback recorded before the kill never runs again,
one cut off by the kill runs again, and every instance ends errored with all rollbacks done.

Starts the real ``edgelet dev`` with a state folder and SIGKILLs it while instances are
rolling back; between runs the state database is read directly to know what was recorded.
"""

from __future__ import annotations

import random
import sqlite3
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from crash import APPEND, ARGS, lines, restart
from test_workflows_crash import create, describe

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "saga", binding = "SAGA", class_name = "Saga" }]
"""

APP = """
    import asyncio, os
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from workers.workflows import NonRetryableError
""" + textwrap.indent(APPEND, "    ") + """
    class Saga(WorkflowEntrypoint):
        async def run(self, event, step):
            me, log = event.instanceId, event.payload["log"]
            for i in range(event.payload["steps"]):
                async def undo(ctx, output):
                    append(log, f"{me} {output} start")
                    await asyncio.sleep(0.04 + 0.03 * (ctx.step.count % 3))
                    append(log, f"{me} {output} end")
                await step.do(f"s{i}", lambda: f"s{i}", rollback=undo,
                              rollback_config={"retries": {"limit": 0}})
            await step.do("fail", {"retries": {"limit": 0}}, lambda: (_ for _ in ()).throw(
                NonRetryableError("out of stock")))

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""

def recorded(folder: Path) -> set[tuple[str, str]]:
    """(instance, step) of every rollback recorded in the state folder (dev is not running)."""
    conn = sqlite3.connect(folder / "state" / "workflows.sqlite3")
    try:
        return {(i, n) for i, n in conn.execute(
            "SELECT i.id, r.name FROM rollbacks r JOIN instances i ON i.seq = r.instance WHERE r.state = 'ok'")}
    finally:
        conn.close()


def wait_errored(s: Any, instance_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = describe(s, "saga", instance_id)
        if info["status"] == "errored" and info["rollback"]["status"] != "running":
            return info
        assert time.monotonic() < deadline, f"{instance_id} still {info['status']}:\n{s.logs()[-3000:]}"
        time.sleep(0.05)


def test_kill_9_during_rollbacks_never_reruns_a_recorded_rollback(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "undo.log"
    steps = 6
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    ids = [f"saga-{i}" for i in range(6)]
    for instance_id in ids:
        create(s, "saga", instance_id, {"log": str(log), "steps": steps})
    rng = random.Random(77)
    # (log lines at the kill, rollbacks recorded by then)
    kills: list[tuple[int, set[tuple[str, str]]]] = []
    for _ in range(3):
        target = len(lines(log)) + rng.randint(2, 10)
        deadline = time.monotonic() + 10
        while len(lines(log)) < target and time.monotonic() < deadline:
            time.sleep(0.003)
        s.kill()
        time.sleep(0.3)  # let isolates notice the host is gone
        kills.append((len(lines(log)), recorded(s.cwd)))
        s = restart(dev, s)
    results = {i: wait_errored(s, i) for i in ids}

    starts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for n, line in enumerate(lines(log)):
        instance_id, name, what = line.split()
        if what == "start":
            starts[(instance_id, name)].append(n)
    reran = 0
    for at, done in kills:
        for key in done:
            # recorded before this kill: never started again afterwards
            assert not [n for n in starts[key] if n >= at], (key, starts[key], at)
    for instance_id, info in results.items():
        assert info["error"]["message"] == "out of stock"
        assert info["rollback"]["status"] == "complete"
        assert [r["name"] for r in info["rollbacks"]] == [f"s{k}" for k in reversed(range(steps))]
        for k in range(steps):
            runs = starts[(instance_id, f"s{k}")]
            assert 1 <= len(runs) <= 1 + len(kills), (instance_id, k, runs)
            reran += len(runs) - 1
    assert reran >= 1, "no kill landed inside a rollback; the test proved nothing"
