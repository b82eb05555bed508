"""Shared helpers for the workflow engine tests, over :class:`edgelet.testing.Platform`.

Not a test module itself (it has no tests); the ``test_workflows_*`` files import from it.
Each module starts one platform for all its tests (module-scoped) to stay fast; tests use
their own workflow classes and instance ids, so they do not see each other's work.

Why plain functions rather than ``p.workflow``: these tests check the workflows plug-in
itself (its handles, its mock registry and their error messages, a step left running while
the clock jumps), so they reach the plug-in's own handles through the running platform.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import write_app

from edgelet.testing import Platform

#: wrangler_like.toml of a one-Worker app ("app.py") with one workflow, FLOW -> class Flow:
#: what the tests of a workflow as users drive it (Worker, API, CLI) run their app with
FLOW_CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
"""


#: ``wf_log.py``, written beside every app :func:`workflow_platform` runs: the run log its
#: workflows keep (``from wf_log import mark, seen``). ``mark`` appends a word to the file the
#: instance's params name as ``log``; a test reads it with :func:`lines` to see which steps
#: ran, in what order and how often (a replayed step marks nothing).
WF_LOG = """
    import os

    def mark(event, text):
        with open(event.payload["log"], "a") as f:
            f.write(text + "\\n")

    def seen(event, text):
        path = event.payload["log"]
        return os.path.exists(path) and text in open(path).read().split()
"""


def app_config(**workflows: str) -> str:
    """wrangler_like.toml of one Worker, ``app.py``, with a workflow per ``name=ClassName``,
    bound as ``NAME`` (``app_config(saga="Saga")``: ``env.SAGA`` runs class ``Saga``)."""
    rows = "".join(f'  {{ name = "{name}", binding = "{name.upper()}", class_name = "{cls}" }},\n'
                   for name, cls in workflows.items())
    return f'name = "app"\nmain = "app.py"\nworkflows = [\n{rows}]\n'


@asynccontextmanager
async def workflow_platform(folder: Path, files: dict[str, str]) -> AsyncIterator[Platform]:
    """Write ``files`` (and :data:`WF_LOG`) into ``folder`` and run its platform on a
    virtual clock, in memory."""
    write_app(folder, {"wf_log.py": WF_LOG, **files})
    async with Platform(folder / "wrangler_like.toml", clock="virtual") as p:
        yield p


def module_platform(folder: str, files: dict[str, str]) -> Any:
    """A module-scoped fixture ``p``: the platform of ``files`` for every test of the
    module (``p = module_platform("wf-engine", {...})`` at the module's top level)."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def p(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
        async with workflow_platform(tmp_path_factory.mktemp(folder), files) as platform:
            yield platform

    return p


def lines(path: Path) -> list[str]:
    """The words ``mark`` wrote to the run log ``path``, in order (none before the first)."""
    return path.read_text().splitlines() if path.exists() else []


def seconds(n: float) -> dt.timedelta:
    """``p.advance(seconds(n))``: the engine tests count in seconds, not milliseconds."""
    return dt.timedelta(seconds=n)


def workflow(p: Platform, binding: str, worker: str | None = None) -> Any:
    """The plug-in's own handle for ``binding`` (or a workflow's name) of ``worker``."""
    return p.host.plugin("workflows").workflow_handle(worker or p.host.config.primary.name, binding)


def workflow_mocks(p: Platform, workflow_name: str) -> Any:
    """The plug-in's mock registry for one workflow."""
    return p.host.plugin("workflows").mocks(workflow_name)


async def jump(p: Platform, n: float) -> None:
    """Move virtual time and fire due timers without waiting for running work to end
    (``p.advance`` waits for it, which a test of a held running slot cannot)."""
    clock = p.clock
    clock.set_time(clock.now() + n)  # type: ignore[attr-defined]
    clock.fire_due()  # type: ignore[attr-defined]
    for _ in range(5):
        await asyncio.sleep(0)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (real time) until ``predicate()`` is true; for files written by isolates."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
