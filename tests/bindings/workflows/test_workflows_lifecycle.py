"""Workflows, second round: dynamic retry delays, id and step limits, createBatch object
forms, delete/deleteBatch and retention (on the virtual clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_app
from test_workflows_support import lines, module_platform, seconds, workflow

from edgelet.config import ConfigError, load_config
from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "delays", binding = "DELAYS", class_name = "Delays" },
      { name = "looper", binding = "LOOPER", class_name = "Looper", limits = { steps = 3 } },
      { name = "quick", binding = "QUICK", class_name = "Quick", retention = "1 hour" },
      { name = "kept", binding = "KEPT", class_name = "Quick" },
    ]
"""

APP = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from wf_log import mark

    class Delays(WorkflowEntrypoint):
        async def run(self, event, step):
            kind = event.payload["kind"]

            def by_error(ctx, error):
                if kind == "raises":
                    raise RuntimeError("no idea")
                if kind == "bad":
                    return {"seconds": 5}
                if "rate limit" in str(error):
                    return f"{ctx.attempt * 30} seconds"
                return 1000

            @step.do("sync", config={"retries": {"limit": 3, "delay": by_error, "backoff": "constant"}})
            async def sync(ctx):
                mark(event, f"attempt {ctx.attempt}")
                if ctx.attempt < 3:
                    raise ValueError("rate limit hit")
                return ctx.attempt
            return await sync()

    class Looper(WorkflowEntrypoint):
        async def run(self, event, step):
            for i in range(event.payload["n"]):
                await step.do(f"s{i}", lambda: i)
            return "done"

    class Quick(WorkflowEntrypoint):
        async def run(self, event, step):
            if event.payload and event.payload.get("wait"):
                await step.wait_for_event("go", "go")
            return "ok"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            wf = self.env.QUICK
            path = request.url.split("/", 3)[3]
            if path == "count":
                out = await wf.createBatch({"count": 3, "params": {"n": 1}})
                return Response.json({"created": [i.id for i in out.created], "errors": out.errors})
            if path == "instances":
                out = await wf.createBatch({"instances": [
                    {"id": "obj-1"}, {"id": "bad id"}, {"id": "obj-1"}, {"id": "obj-2", "params": {"x": 1}}]})
                return Response.json({"created": [i.id for i in out.created], "errors": out.errors})
            if path == "delete":
                inst = await wf.get("obj-2")
                await inst.delete()
                try:
                    await wf.get("obj-2")
                    return Response("still there")
                except LookupError:
                    return Response("gone")
            return Response("?", status=404)
"""


p = module_platform("wf-lifecycle", {"wrangler_like.toml": CONFIG, "app.py": APP})


async def test_delay_function_sets_each_retry_delay(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    inst = await workflow(p, "DELAYS").create(params={"kind": "ok", "log": str(log)})
    await p.settle()
    assert lines(log) == ["attempt 1"]
    await p.advance(seconds(29))
    assert lines(log) == ["attempt 1"]        # attempt 1 failed with "rate limit": 1 * 30 s
    await p.advance(seconds(2))
    assert lines(log) == ["attempt 1", "attempt 2"]
    await p.advance(seconds(57))              # attempt 2 (at 30 s): 2 * 30 s
    assert len(lines(log)) == 2
    await p.advance(seconds(3))
    assert (await inst.wait_for_status("complete", timeout=5)).output == 3
    step = (await inst.steps())[0]
    assert step.config["retries"]["delay"] == "<function Delays.run.<locals>.by_error>"


@pytest.mark.parametrize("kind,words", [("raises", "raised RuntimeError: no idea"),
                                        ("bad", "returned dict")])
async def test_bad_delay_function_fails_the_step_naming_workflow_and_option(
        p: Platform, tmp_path: Path, kind: str, words: str) -> None:
    log = tmp_path / "d.log"
    inst = await workflow(p, "DELAYS").create(params={"kind": kind, "log": str(log)})
    await p.settle()
    info = await inst.status()
    assert info.status == "errored"
    assert "workflow 'delays'" in info.error["message"] and "retries.delay" in info.error["message"]
    assert words in info.error["message"]
    assert lines(log) == ["attempt 1"]        # no retry after a broken delay function


async def test_instance_ids_are_at_most_64_characters(p: Platform) -> None:
    wf = workflow(p, "QUICK")
    await wf.create(id="a" * 64)
    with pytest.raises(ValueError, match="1 to 64"):
        await wf.create(id="b" * 65)


async def test_limits_steps_fails_the_instance_saying_so(p: Platform) -> None:
    ok = await workflow(p, "LOOPER").create(params={"n": 3})
    assert (await ok.wait_for_status("complete", timeout=5)).output == "done"
    over = await workflow(p, "LOOPER").create(params={"n": 5})
    await p.settle()
    info = await over.status()
    assert info.status == "errored"
    assert "limits.steps" in info.error["message"] and "'s3' would be step 4" in info.error["message"]
    assert len(await over.steps()) == 3


async def test_create_batch_object_forms_from_a_worker(p: Platform) -> None:
    resp = await p.fetch("/count")
    body = await resp.json()
    assert len(body["created"]) == 3 and body["errors"] == []
    body = await (await p.fetch("/instances")).json()
    assert body["created"] == ["obj-1", "obj-2"]
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert "invalid instance id 'bad id'" in body["errors"][0]["error"]
    assert "appears twice" in body["errors"][1]["error"]
    await p.settle()
    assert await (await p.fetch("/delete")).text() == "gone"


async def test_create_batch_object_form_reports_ids_in_use(p: Platform) -> None:
    wf = workflow(p, "KEPT")
    await wf.create(id="taken")
    out = await wf.createBatch({"instances": [{"id": "taken"}, {"id": "fresh"}]})
    assert [i.id for i in out.created] == ["fresh"]
    assert out.errors[0]["index"] == 0 and "already in use" in out.errors[0]["error"]


async def test_delete_and_delete_batch(p: Platform) -> None:
    wf = workflow(p, "KEPT")
    live = await wf.create(id="live", params={"wait": True})
    done = [await wf.create(id=f"done-{i}") for i in range(3)]
    await p.settle()
    with pytest.raises(RuntimeError, match="instance 'live' is waiting.*terminate it first"):
        await live.delete()
    with pytest.raises(RuntimeError, match="'live'"):
        await wf.deleteBatch(["done-0", "live"])
    assert (await done[0].status()).status == "complete"   # all or none: nothing deleted
    with pytest.raises(ValueError, match="deleteBatch on workflow 'kept' takes at most 100"):
        await wf.deleteBatch([f"x{i}" for i in range(101)])
    assert await wf.deleteBatch(["done-0", "done-1"]) == 2
    await done[2].delete()
    for inst in done:
        with pytest.raises(LookupError):
            await wf.get(inst.id)
    await live.terminate()
    await live.delete()
    # a deleted id is free again
    again = await wf.create(id="done-0")
    await again.wait_for_status("complete", timeout=5)


async def test_retention_deletes_finished_instances_on_the_platform_clock(p: Platform) -> None:
    quick, kept = workflow(p, "QUICK"), workflow(p, "KEPT")
    a = await quick.create(id="ret-a")
    b = await kept.create(id="ret-b")
    waiting = await quick.create(id="ret-live", params={"wait": True})
    await a.wait_for_status("complete", timeout=5)
    await b.wait_for_status("complete", timeout=5)
    await p.advance(seconds(3590))
    assert (await a.status()).status == "complete"
    await p.advance(seconds(20))
    with pytest.raises(LookupError):
        await quick.get("ret-a")                         # retention = "1 hour"
    assert (await b.status()).status == "complete"        # default: 7 days
    assert (await waiting.status()).status == "waiting"   # unfinished instances stay
    await p.advance(seconds(7 * 86400))
    with pytest.raises(LookupError):
        await kept.get("ret-b")


@pytest.mark.parametrize("entry,words", [
    ('schedules = ["61 * * * *"]', "workflow 'w': schedule '61 * * * *' is not a valid cron"),
    ("limits = { steps = 30000 }", "workflow 'w': limits.steps must be between 1 and 25000"),
    ('retention = "soon"', "workflow 'w': retention"),
])
async def test_bad_workflow_options_name_the_workflow_and_option(tmp_path: Path, entry: str, words: str) -> None:
    write_app(tmp_path, {"wrangler_like.toml": f"""
        name = "app"
        main = "app.py"
        workflows = [{{ name = "w", binding = "W", class_name = "W", {entry} }}]
    """, "app.py": "from workers import WorkflowEntrypoint\nclass W(WorkflowEntrypoint):\n    pass\n"})
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path / "wrangler_like.toml"])
    assert words in str(info.value)
