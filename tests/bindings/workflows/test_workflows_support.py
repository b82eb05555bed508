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

from conftest import write_app

from edgelet.testing import Platform

#: wrangler_like.toml of a one-Worker app ("app.py") with one workflow, FLOW -> class Flow:
#: what the tests of a workflow as users drive it (Worker, API, CLI) run their app with
FLOW_CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
"""


@asynccontextmanager
async def workflow_platform(folder: Path, files: dict[str, str]) -> AsyncIterator[Platform]:
    """Write ``files`` into ``folder`` and run its platform on a virtual clock, in memory."""
    write_app(folder, files)
    async with Platform(folder / "wrangler_like.toml", clock="virtual") as p:
        yield p


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
