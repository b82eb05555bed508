"""Workflows survive ``kill -9``: recorded steps never run again, interrupted ones do.

These start the real ``edgelet dev`` with a state folder, SIGKILL it (host and isolates)
and start a new one on the same folder.
"""

from __future__ import annotations

import random
import subprocess
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from conftest import EDGELET
from crash import APPEND, ARGS, kill_and_restart, kill_group, lines, restart, wait_until

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "crashy", binding = "CRASHY", class_name = "Crashy" },
      { name = "napper", binding = "NAPPER", class_name = "Napper" },
      { name = "gated", binding = "GATED", class_name = "Gated" },
      { name = "fragile", binding = "FRAGILE", class_name = "Fragile" },
    ]
"""

APP = """
    import asyncio, os, uuid
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
""" + textwrap.indent(APPEND, "    ") + """
    class Crashy(WorkflowEntrypoint):
        async def run(self, event, step):
            me, log = event.instanceId, event.payload["log"]
            tokens = []
            pause = event.payload.get("step_s")   # a step's time (fast ones: the isolate commits)
            for i in range(event.payload["steps"]):
                @step.do(f"s{i}")
                async def work():
                    token = uuid.uuid4().hex
                    append(log, f"{me} s{i} {token}")   # the side effect of this attempt
                    await asyncio.sleep(0.05 + 0.05 * (i % 3) if pause is None else pause)
                    return token                          # recorded as the step's result
                tokens.append(await work())
                if i == 2:
                    await step.sleep("breather", "1 second")
            return tokens

    class Napper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: "x")
            await step.sleep("nap", "3 seconds")
            return await step.do("after", lambda: "done")

    class Gated(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("blocked")
            async def blocked():
                token = uuid.uuid4().hex
                append(event.payload["log"], token)
                while not os.path.exists(event.payload["gate"]):
                    await asyncio.sleep(0.01)
                return token
            return await blocked()

    class Fragile(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("fragile")
            async def fragile():
                marker = event.payload["marker"]
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    await asyncio.sleep(0.3)   # noted on the host as in flight meanwhile
                    os.kill(os.getpid(), 9)    # the isolate dies, the platform runs on
                return "ok"
            return await fragile()

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""

def create(s: Any, workflow: str, instance_id: str, params: dict[str, Any]) -> None:
    body = s.api("POST", f"/workflows/{workflow}/instances", json={"instance_id": instance_id, "params": params})
    assert body["success"], body


def describe(s: Any, workflow: str, instance_id: str) -> dict[str, Any]:
    body = s.api("GET", f"/workflows/{workflow}/instances/{instance_id}")
    assert body["success"], body
    return body["result"]


def wait_status(s: Any, workflow: str, instance_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = describe(s, workflow, instance_id)
        if info["status"] == status:
            return info
        assert info["status"] not in ("errored", "terminated"), info
        assert time.monotonic() < deadline, f"{instance_id} still {info['status']}:\n{s.logs()[-3000:]}"
        time.sleep(0.05)


def test_kill_9_at_random_moments_never_reruns_a_recorded_step(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    ids = [f"order-{i}" for i in range(8)]
    steps = 6
    for instance_id in ids:
        create(s, "crashy", instance_id, {"log": str(log), "steps": steps})
    rng = random.Random(1234)
    kills = 4
    for _ in range(kills):
        # kill at a random point of progress: right after some attempts wrote their side
        # effect, so the kill lands inside a step more often than not
        seen = len(lines(log))
        target = seen + rng.randint(1, 8)
        deadline = time.monotonic() + 10
        while len(lines(log)) < target and time.monotonic() < deadline:
            time.sleep(0.003)
        time.sleep(rng.uniform(0, 0.04))
        s = kill_and_restart(dev, s)
    results = {i: wait_status(s, "crashy", i, "complete", timeout=30) for i in ids}

    reran = check_side_effects(log, results, steps, kills)
    for info in results.values():
        assert [st["name"] for st in info["steps"]] == ["s0", "s1", "s2", "breather", "s3", "s4", "s5"]
    assert reran >= 1, "no kill landed inside a step; the test proved nothing"


def check_side_effects(log: Path, results: dict[str, dict[str, Any]], steps: int, kills: int) -> int:
    """Check the crashy instances' side effects against what was recorded; the re-runs.

    Nothing is lost (every step recorded, the output made of the recorded results) and
    nothing is answered before it is durable: a step's recorded result is its last attempt's
    (once recorded, it never ran again), and once a run went on to step k no earlier step ran
    again (only the one in flight at a kill may, at most once per kill)."""
    attempts: dict[tuple[str, str], list[str]] = defaultdict(list)
    reached: dict[str, int] = defaultdict(int)
    for line in log.read_text().splitlines():
        instance_id, step, token = line.split()
        attempts[(instance_id, step)].append(token)
        assert int(step[1:]) >= reached[instance_id], (instance_id, step, reached[instance_id])
        reached[instance_id] = int(step[1:])
    reran = 0
    for instance_id, info in results.items():
        recorded = {st["name"]: st["output"] for st in info["steps"] if st["type"] == "step"}
        assert sorted(recorded) == sorted(f"s{k}" for k in range(steps)), "a recorded step is missing"
        assert info["output"] == [recorded[f"s{k}"] for k in range(steps)]
        for k in range(steps):
            tokens = attempts[(instance_id, f"s{k}")]
            assert tokens and tokens[-1] == recorded[f"s{k}"], (instance_id, k, tokens)
            assert len(tokens) <= 1 + kills, (instance_id, k, tokens)
            reran += len(tokens) - 1
    return reran


def test_kill_9_while_the_isolate_commits_fast_steps(dev: Any, tmp_path: Path) -> None:
    # steps of 2 ms, under the moment after which an attempt is noted on the host: each is
    # committed by the isolate itself (bindings/workflows/local.py), not by the host
    log = tmp_path / "side-effects.log"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    ids, steps, kills = [f"quick-{i}" for i in range(6)], 30, 4
    for instance_id in ids:
        create(s, "crashy", instance_id, {"log": str(log), "steps": steps, "step_s": 0.002})
    rng = random.Random(2026)
    for k in range(kills):
        target = len(lines(log)) + rng.randint(5, 30)
        deadline = time.monotonic() + 20
        while len(lines(log)) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        if k % 2:
            s = kill_and_restart(dev, s)   # the host alone: its isolate dies with it
        else:
            kill_group(s)                  # host, fork server and isolate at once
            s = restart(dev, s)
    results = {i: wait_status(s, "crashy", i, "complete", timeout=60) for i in ids}
    assert check_side_effects(log, results, steps, kills) >= 1, \
        "no kill landed inside a step; the test proved nothing"


def test_kill_9_while_a_lone_run_commits_its_steps_at_once(dev: Any, tmp_path: Path) -> None:
    # one instance alone in its isolate, steps that never wait: each is committed at once,
    # without a loop turn (LocalRecorder._commit, GroupCommit.commit_now); a kill between a
    # step's side effect and its commit re-runs that attempt only, never a recorded step
    log = tmp_path / "side-effects.log"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    steps, kills = 400, 5
    create(s, "crashy", "alone", {"log": str(log), "steps": steps, "step_s": 0})
    rng = random.Random(7)
    for k in range(kills):
        target = len(lines(log)) + rng.randint(20, 60)
        deadline = time.monotonic() + 20
        while len(lines(log)) < target and time.monotonic() < deadline:
            time.sleep(0.001)
        if k % 2:
            s = kill_and_restart(dev, s)
        else:
            kill_group(s)
            s = restart(dev, s)
    result = wait_status(s, "crashy", "alone", "complete", timeout=60)
    reran = check_side_effects(log, {"alone": result}, steps, kills)
    assert reran >= 1, "no kill landed between a step's side effect and its commit; the test proved nothing"


def kill_inside_gated_step(dev: Any, tmp_path: Path, instance_id: str, *, running_for: float = 0.0
                           ) -> tuple[Any, Path, dict[str, Any]]:
    """Start a ``gated`` instance, SIGKILL the platform while its step waits at the gate
    (``running_for`` s after the step wrote its side effect), open the gate, start again and
    wait for it to complete: (the new dev, the side-effect log, its description)."""
    log, gate = tmp_path / f"{instance_id}.log", tmp_path / "gate"
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    create(s, "gated", instance_id, {"log": str(log), "gate": str(gate)})
    wait_until(log.exists, timeout=10, what=lambda: f"the step never ran:\n{s.logs()[-2000:]}", every=0.02)
    time.sleep(running_for)
    s.kill()  # mid-attempt: the step wrote its side effect but no result was recorded
    gate.touch()
    s = restart(dev, s)
    return s, log, wait_status(s, "gated", instance_id, "complete")


def test_interrupted_attempt_runs_again_after_restart(dev: Any, tmp_path: Path) -> None:
    s, log, info = kill_inside_gated_step(dev, tmp_path, "g1")
    tokens = log.read_text().split()
    assert len(tokens) == 2 and info["output"] == tokens[1]
    assert "resuming 1 interrupted instance" in s.logs()


def test_sleep_that_ended_during_downtime_ends_at_once(dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    create(s, "napper", "nap-1", {})
    deadline = time.monotonic() + 10
    while describe(s, "napper", "nap-1")["status"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    s.kill()
    time.sleep(3.2)  # the 3 s sleep ends while nothing runs
    s = restart(dev, s)
    ready = time.monotonic()  # timed from here: a loaded machine may take seconds to start
    info = wait_status(s, "napper", "nap-1", "complete", timeout=10)
    # no second wait after the restart: the nap is not recorded again, the instance never
    # waits again, and it completes well before a second 3 s nap could have ended
    logs = s.logs()
    assert "sleep 'nap'" not in logs and "running -> waiting" not in logs, logs
    assert time.monotonic() - ready < 2.0
    assert info["output"] == "done"
    assert [st["type"] for st in info["steps"]] == ["step", "sleep", "step"]


def test_attempt_cut_off_by_a_crash_is_listed_in_describe(dev: Any, tmp_path: Path) -> None:
    # the attempt has been running for a moment before the kill: the platform noted it
    s, _, info = kill_inside_gated_step(dev, tmp_path, "cut-1", running_for=0.3)
    attempts = info["steps"][0]["attempts"]
    assert [a.get("interrupted", False) for a in attempts] == [True, False], attempts
    assert attempts[0]["error"]["name"] == "AttemptInterrupted" and attempts[0]["end"] is None
    assert "crash or kill" in attempts[0]["error"]["message"]
    assert attempts[1]["success"] and attempts[0]["start"] <= attempts[1]["start"]
    # the CLI lists it too
    out = subprocess.run([*EDGELET, "workflows", "instances", "describe", "gated", "cut-1", "--port", str(s.port)],
                         capture_output=True, text=True, timeout=30, cwd=s.cwd)
    assert "AttemptInterrupted" in out.stdout, out.stdout


def test_attempt_cut_off_by_an_isolate_crash_is_listed_once_before_and_after_a_restart(dev: Any,
                                                                                        tmp_path: Path) -> None:
    # the attempt was noted in flight, its isolate died, the next run committed the step in
    # its own isolate: describe lists the cut-off attempt at once, and the same after a restart
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    create(s, "fragile", "f-1", {"marker": str(tmp_path / "marker")})
    info = wait_status(s, "fragile", "f-1", "complete")

    def shown(info: dict[str, Any]) -> list[tuple[bool, str | None]]:
        return [(a.get("interrupted", False), (a["error"] or {}).get("name")) for a in info["steps"][0]["attempts"]]

    assert shown(info) == [(True, "AttemptInterrupted"), (False, None)], info["steps"][0]["attempts"]
    assert "isolate died" in info["steps"][0]["attempts"][0]["error"]["message"]
    s = kill_and_restart(dev, s)
    again = describe(s, "fragile", "f-1")
    assert shown(again) == shown(info), again["steps"][0]["attempts"]
