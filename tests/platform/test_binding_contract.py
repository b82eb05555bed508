"""The contract between the host and binding kinds, as a Worker sees it: nothing internal
in ``env``, a kind's host half reachable from its isolate half only for what the Worker runs,
and base classes, handler names and test handles supplied by the kinds themselves."""

from __future__ import annotations

import textwrap
from pathlib import Path

from edgelet.testing import Platform

CONFIG = """
    [[workers]]
    name = "owner"
    main = "owner.py"
    durable_objects.bindings = [{ name = "COUNTER", class_name = "Counter" }]
    workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]

    [[workers]]
    name = "intruder"
    main = "intruder.py"
"""

OWNER = """
    from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint

    class Counter(DurableObject):
        async def hit(self):
            return 1

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            return await step.do("one", lambda: 1)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(",".join(sorted(self.env.keys())) + " " + repr(self.env))
"""

INTRUDER = """
    from edgelet.runtime.isolate import Runtime
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            kind, method = request.url.rsplit("/", 2)[-2:]
            # what each kind's own isolate half would send: a step record, an alarm
            args = [["flow", "x", 1, 0]] if kind == "workflows" else ["owner_Counter", "00" * 32, 0]
            try:
                await Runtime.current.call_host(kind, method, *args)
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=403)
            return Response("allowed")
"""


def app(tmp_path: Path) -> Path:
    for name, text in {"wrangler_like.toml": CONFIG, "owner.py": OWNER, "intruder.py": INTRUDER}.items():
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "wrangler_like.toml"


async def test_env_holds_only_what_the_config_declares(tmp_path: Path) -> None:
    async with Platform(app(tmp_path)) as p:
        text = await (await p.fetch("/", "owner")).text()
    names, _, representation = text.partition(" ")
    assert names == "COUNTER,FLOW"
    assert "__" not in representation


async def test_a_kind_host_half_refuses_a_worker_that_does_not_run_its_class(tmp_path: Path) -> None:
    async with Platform(app(tmp_path)) as p:
        workflows = await p.fetch("/workflows/step_done", "intruder")
        alarms = await p.fetch("/durable_objects/setAlarm", "intruder")
    assert workflows.status == 403
    assert "PermissionError" in await workflows.text()
    assert "does not run workflow 'flow'" in await workflows.text()
    assert alarms.status == 403
    assert "does not run Durable Object namespace 'owner_Counter'" in await alarms.text()


async def test_test_handles_come_from_the_plugins(tmp_path: Path) -> None:
    async with Platform(app(tmp_path)) as p:
        instance = await p.workflow("FLOW").create(id="i1")
        await p.settle()
        assert (await instance.status())["output"] == 1
        try:
            p.no_such_kind("X")
        except AttributeError as exc:
            assert "no_such_kind" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("an unknown accessor must raise AttributeError")
