"""Workflows: the Python DAG API, Cloudflare's plain step.do, fan-out replay, non-determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workflows_support import app_config, lines, module_platform, seconds, workflow

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = app_config(dag="Dag", legacy="Legacy", plain="Plain", fanout="FanOut", branches="Branches", drift="Drift",
                    kind="KindChange", badparam="BadParam")

APP = """
    import asyncio, os
    from workers import WorkflowEntrypoint
    from wf_log import mark, seen

    class Dag(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do()
            async def dep_1():
                mark(event, "dep_1")
                # dep_2 runs at the same time (concurrent=True): wait for its mark
                for _ in range(200):
                    if seen(event, "dep_2"):
                        return "d1"
                    await asyncio.sleep(0.005)
                return "d1-alone"

            @step.do()
            async def dep_2(ctx):
                mark(event, "dep_2")
                return f"d2@{ctx.attempt}"

            @step.do(concurrent=True)
            async def final_step(dep_1, dep_2):
                mark(event, "final_step")
                return f"{dep_1}+{dep_2}"

            @step.do("summary", concurrent=True)
            async def summary(dep_1, final_step, ctx):
                return [dep_1, final_step, ctx.step.name, ctx.step.count]

            first = await summary()
            await step.sleep("nap", 1000)
            return [first, await final_step()]

    class Legacy(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("dependency 1")
            async def a():
                return 1

            @step.do("dependency 2")
            async def b():
                return 2

            @step.do("final step", depends=[a, b], concurrent=True)
            async def summarize(res1=None, res2=None, ctx=None):
                return [res1, res2, ctx.step.name]

            return await summarize()

    class Plain(WorkflowEntrypoint):
        async def run(self, event, step):
            async def five():
                return 5
            x = await step.do("plain", five)
            y = await step.do("plain with config", {"retries": {"limit": 0}}, lambda ctx: ctx.attempt)
            z = await step.do("sync", lambda: "sync ok")
            return [x, y, z]

    class FanOut(WorkflowEntrypoint):
        async def run(self, event, step):
            async def item(i):
                @step.do(f"item {i}")
                async def work():
                    await asyncio.sleep((5 - i) * 0.01)  # finish in reverse order
                    mark(event, f"item-{i}")
                    return i * i
                return await work()

            def same(i):
                async def work():
                    await asyncio.sleep((5 - i) * 0.01)
                    return f"same-{i}"
                return work

            squares = await asyncio.gather(*(item(i) for i in range(5)))
            same_name = await asyncio.gather(*(step.do("same", same(i)) for i in range(5)))
            await step.sleep("after", 1000)
            return [squares, same_name]

    class Branches(WorkflowEntrypoint):
        async def run(self, event, step):
            async def one():
                await step.do("a1", lambda: "a1")
                await step.sleep("s1", 10_000)
                return await step.do("a3", lambda: "a3")

            async def two():
                async def slow():
                    await asyncio.sleep(0.02)
                    return "b"
                await step.do("b1", slow)
                await step.do("b2", slow)
                await step.sleep("s2", 20_000)
                return "two"

            return await asyncio.gather(one(), two())

    class Drift(WorkflowEntrypoint):
        async def run(self, event, step):
            flag = open(event.payload["flag"]).read().strip()
            try:
                if flag == "a":
                    await step.do("a", lambda: "A")
                else:
                    await step.do("b", lambda: "B")
            except Exception:
                pass  # catching it must not hide the divergence
            await step.sleep("nap", 1000)
            return "done"

    class KindChange(WorkflowEntrypoint):
        async def run(self, event, step):
            if open(event.payload["flag"]).read().strip() == "do":
                await step.do("x", lambda: 1)
            else:
                await step.sleep("x", 1000)
            await step.sleep("nap", 1000)

    class BadParam(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do()
            async def needs(nothing_like_this):
                return 1
            return await needs()
"""


p = module_platform("wf-dag", {"wrangler_like.toml": CONFIG, "app.py": APP})


async def test_dependencies_bind_by_name_run_once_and_concurrently(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "dag.log"
    inst = await workflow(p, "DAG").create(params={"log": str(log)})
    await p.settle()
    await p.advance(seconds(1.5))
    info = await inst.wait_for_status("complete", timeout=10)
    first = ["d1", "d1+d2@1", "summary", 1]
    # final_step called directly after the sleep is a new occurrence (#2); its deps come from history
    assert info.output == [first, "d1+d2@1"]
    assert sorted(lines(log)) == ["dep_1", "dep_2", "final_step", "final_step"]
    steps = await inst.steps()
    assert [(s.name, s.count) for s in steps if s.type == "step"].count(("dep_1", 1)) == 1
    assert ("final_step", 2) in [(s.name, s.count) for s in steps]


async def test_legacy_depends_binds_in_order(p: Platform) -> None:
    inst = await workflow(p, "LEGACY").create()
    assert (await inst.wait_for_status("complete", timeout=10)).output == [1, 2, "final step"]


async def test_plain_cloudflare_form(p: Platform) -> None:
    inst = await workflow(p, "PLAIN").create()
    assert (await inst.wait_for_status("complete", timeout=10)).output == [5, 1, "sync ok"]
    steps = await inst.steps()
    assert steps[1].config["retries"]["limit"] == 0


async def test_fan_out_replays_whatever_order_steps_finished(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "fan.log"
    inst = await workflow(p, "FANOUT").create(params={"log": str(log)})
    await p.settle()
    assert lines(log) == [f"item-{i}" for i in (4, 3, 2, 1, 0)]  # they finished in reverse order
    await p.advance(seconds(1.5))
    info = await inst.wait_for_status("complete", timeout=10)
    assert info.output == [[0, 1, 4, 9, 16], [f"same-{i}" for i in range(5)]]
    assert len(lines(log)) == 5  # nothing ran again on the replay
    same = sorted((s.count, s.output) for s in await inst.steps() if s.name == "same")
    assert same == [(i + 1, f"same-{i}") for i in range(5)]  # counted in call order


async def test_concurrent_branches_replay_without_false_divergence(p: Platform) -> None:
    inst = await workflow(p, "BRANCHES").create()
    await p.settle()
    await p.advance(seconds(10.5))  # branch one wakes and runs a NEW step while branch two replays
    status = await inst.status()
    assert status.status == "waiting", status
    assert "a3" in [s.name for s in await inst.steps()]
    await p.advance(seconds(10))
    assert (await inst.wait_for_status("complete", timeout=10)).output == ["a3", "two"]


async def test_changed_code_is_reported_as_non_determinism(p: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("a")
    inst = await workflow(p, "DRIFT").create(params={"flag": str(flag)})
    await p.settle()
    assert (await inst.status()).status == "waiting"
    flag.write_text("b")
    await p.advance(seconds(1.5))
    status = await inst.wait_for_status("errored", timeout=10)
    assert status.error.name == "NonDeterminismError"
    assert "step.do 'a' #1 (completed) was not reached again" in status.error.message
    assert "new step.do 'b' #1" in status.error.message
    assert "b" not in [s.name for s in await inst.steps()]  # the new step never ran


async def test_changed_step_kind_is_reported(p: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("do")
    inst = await workflow(p, "KIND").create(params={"flag": str(flag)})
    await p.settle()
    flag.write_text("sleep")
    await p.advance(seconds(1.5))
    status = await inst.wait_for_status("errored", timeout=10)
    assert status.error.name == "NonDeterminismError"
    assert "'x' #1 was recorded as step.do but the code now calls step.sleep" in status.error.message


async def test_unknown_parameter_is_a_clear_error(p: Platform) -> None:
    inst = await workflow(p, "BADPARAM").create()
    status = await inst.wait_for_status("errored", timeout=10)
    assert status.error.name == "TypeError"
    assert "parameter 'nothing_like_this' is neither ctx nor a step" in status.error.message
