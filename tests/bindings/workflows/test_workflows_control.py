"""Workflows: pause, resume, terminate and restart in every status; concurrency and queueing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflows_support import jump, lines, module_platform, seconds, until, workflow

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "gated", binding = "GATED", class_name = "Gated" },
      { name = "single", binding = "SINGLE", class_name = "Gated", concurrency = 1 },
      { name = "pair", binding = "PAIR", class_name = "Gated", concurrency = 2 },
      { name = "waits", binding = "WAITS", class_name = "Waits" },
    ]
"""

APP = """
    import asyncio, os
    from workers import WorkflowEntrypoint
    from wf_log import mark

    async def gate(event, name):
        # holds the step 'running' until the test creates the file
        path = event.payload.get(name)
        while path and not os.path.exists(path):
            await asyncio.sleep(0.005)

    class Gated(WorkflowEntrypoint):
        async def run(self, event, step):
            tag = event.payload.get("tag", "")
            if event.payload.get("sleep_first"):
                await step.sleep("first nap", event.payload["sleep_first"])

            @step.do("one")
            async def one():
                mark(event, f"{tag}one")
                await gate(event, "gate1")
                return 1

            @step.do("two")
            async def two():
                mark(event, f"{tag}two")
                await gate(event, "gate2")
                return 2

            a = await one()
            b = await two()
            return a + b

    class Waits(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep("nap", "1 hour")
            ev = await step.wait_for_event("go", "go", timeout="2 hours")
            return ev.payload
"""


p = module_platform("wf-control", {"wrangler_like.toml": CONFIG, "app.py": APP})


def gated(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"log": str(tmp_path / "log"), "gate1": str(tmp_path / "gate1"), "gate2": str(tmp_path / "gate2"),
            **extra}


async def test_pause_waits_for_the_current_step_then_resume_continues(p: Platform, tmp_path: Path) -> None:
    inst = await workflow(p, "GATED").create(params=gated(tmp_path))
    await until(lambda: lines(tmp_path / "log") == ["one"])
    await inst.pause()
    assert (await inst.status()).status == "waitingForPause"
    await inst.pause()  # pausing again is harmless
    await inst.resume()  # resuming before it paused cancels the pause
    assert (await inst.status()).status == "running"
    await inst.pause()
    (tmp_path / "gate1").touch()
    await inst.wait_for_status("paused", timeout=10)
    assert (await inst.steps())[0].output == 1  # the current step finished and was recorded
    assert lines(tmp_path / "log") == ["one"]  # the next one did not start
    (tmp_path / "gate2").touch()
    await inst.resume()
    assert (await inst.wait_for_status("complete", timeout=10)).output == 3
    assert lines(tmp_path / "log") == ["one", "two"]


async def test_pause_and_resume_a_waiting_instance(p: Platform) -> None:
    inst = await workflow(p, "WAITS").create()
    await p.settle()
    assert (await inst.status()).status == "waiting"
    await inst.pause()
    assert (await inst.status()).status == "paused"
    await p.advance(seconds(3601))  # the sleep ends while paused: nothing runs
    assert (await inst.status()).status == "paused"
    await inst.sendEvent(type="go", payload="kept")  # buffered while paused
    await inst.resume()
    assert (await inst.wait_for_status("complete", timeout=10)).output == "kept"


async def test_queue_respects_concurrency_and_creation_order(p: Platform, tmp_path: Path) -> None:
    wf = workflow(p, "PAIR")
    params = gated(tmp_path)
    insts = [await wf.create(id=f"pair-{i}", params={**params, "tag": f"{i}:"}) for i in range(5)]
    await until(lambda: len(lines(tmp_path / "log")) == 2)
    statuses = [(await i.status()).status for i in insts]
    assert statuses == ["running", "running", "queued", "queued", "queued"]
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    for inst in insts:
        await inst.wait_for_status("complete", timeout=10)
    starts = [line.split(":")[0] for line in lines(tmp_path / "log") if line.endswith("one")]
    assert starts[:2] == ["0", "1"] and starts[2:] == ["2", "3", "4"]


async def test_woken_instances_go_before_new_ones(p: Platform, tmp_path: Path) -> None:
    wf = workflow(p, "SINGLE")
    log = str(tmp_path / "log")
    sleeper = await wf.create(id="woken", params={"log": log, "sleep_first": 10_000, "tag": "W:"})
    await p.settle()
    assert (await sleeper.status()).status == "waiting"  # sleeping holds no slot
    holder = await wf.create(id="holder", params={**gated(tmp_path), "tag": "H:"})
    await until(lambda: lines(tmp_path / "log") == ["H:one"])
    newer = await wf.create(id="newer", params={"log": log, "tag": "N:"})
    await jump(p, 11)  # the sleeper is due, but the only slot is taken
    assert (await sleeper.status()).status == "waiting"
    assert (await newer.status()).status == "queued"
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    for inst in (holder, sleeper, newer):
        await inst.wait_for_status("complete", timeout=10)
    # the woken instance took the freed slot before the newer one started
    assert lines(tmp_path / "log") == ["H:one", "H:two", "W:one", "W:two", "N:one", "N:two"]


async def test_pause_resume_terminate_in_every_status(p: Platform, tmp_path: Path) -> None:
    single = workflow(p, "SINGLE")
    blocker = await single.create(params=gated(tmp_path / "b"))
    queued = await single.create()
    await blocker.wait_for_status("running", timeout=10)
    assert (await queued.status()).status == "queued"
    await queued.pause()
    assert (await queued.status()).status == "paused"
    await queued.resume()
    assert (await queued.status()).status == "queued"  # never started: back in the queue
    await queued.terminate()
    assert (await queued.status()).status == "terminated"
    for action in ("pause", "resume", "terminate"):
        with pytest.raises(RuntimeError, match=f"cannot {action} instance .* it is (already )?terminated"):
            await getattr(queued, action)()
    await blocker.terminate()  # running
    assert (await blocker.status()).status == "terminated"
    steps = await blocker.steps()
    assert steps[-1].type == "termination"

    done = await workflow(p, "GATED").create(params={"log": str(tmp_path / "done.log")})
    await done.wait_for_status("complete", timeout=10)
    for action in ("pause", "resume", "terminate"):
        with pytest.raises(RuntimeError, match="it is (already )?complete"):
            await getattr(done, action)()
    waiting = await workflow(p, "WAITS").create()
    await p.settle()
    await waiting.resume()  # not paused: nothing to do
    assert (await waiting.status()).status == "waiting"
    await waiting.terminate()
    assert (await waiting.status()).status == "terminated"
    with pytest.raises(RuntimeError, match="cannot send event"):
        await waiting.sendEvent(type="go")


async def test_terminate_while_a_step_runs_records_nothing_more(p: Platform, tmp_path: Path) -> None:
    inst = await workflow(p, "GATED").create(params=gated(tmp_path))
    await until(lambda: lines(tmp_path / "log") == ["one"])
    await inst.terminate()
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    await p.settle()
    assert (await inst.status()).status == "terminated"
    assert [s.type for s in await inst.steps()] == ["termination"]
    assert lines(tmp_path / "log") == ["one"]


async def test_restart_reruns_from_the_top_or_from_a_step(p: Platform, tmp_path: Path) -> None:
    params = gated(tmp_path)
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    inst = await workflow(p, "GATED").create(params=params)
    await inst.wait_for_status("complete", timeout=10)
    await inst.restart(from_step="two")
    assert (await inst.wait_for_status("complete", timeout=10)).output == 3
    assert lines(tmp_path / "log") == ["one", "two", "two"]  # 'one' kept its recorded result
    await inst.restart()
    await inst.wait_for_status("complete", timeout=10)
    assert lines(tmp_path / "log") == ["one", "two", "two", "one", "two"]
    with pytest.raises(ValueError, match="no such step .*'one', 'two'"):
        await inst.restart(from_step="three")


async def test_restart_while_running_abandons_the_old_run(p: Platform, tmp_path: Path) -> None:
    inst = await workflow(p, "GATED").create(params=gated(tmp_path))
    await until(lambda: lines(tmp_path / "log") == ["one"])
    await inst.restart()
    await until(lambda: lines(tmp_path / "log") == ["one", "one"])
    (tmp_path / "gate1").touch()
    (tmp_path / "gate2").touch()
    assert (await inst.wait_for_status("complete", timeout=10)).output == 3
    steps = await inst.steps()
    assert [(s.name, s.count) for s in steps] == [("one", 1), ("two", 1)]
