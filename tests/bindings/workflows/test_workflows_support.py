"""Shared harness for the workflow tests: an in-process host on a virtual clock.

Not a test module itself (it has no tests); the ``test_workflows_*`` files import from it.
Each module starts one host for all its tests (module-scoped) to stay fast; tests use
their own workflow classes and instance ids, so they do not see each other's work.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from edgelet.clock import VirtualClock
from edgelet.config import load_config
from edgelet.host import Host


class LocalPlatform:
    """A started :class:`Host` with helpers to drive virtual time and reach workflows."""

    def __init__(self, folder: Path, files: dict[str, str], *, persist: bool = False) -> None:
        self.folder = folder
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        self.clock = VirtualClock()
        self.persist = persist
        self.host: Host | None = None

    async def start(self) -> "LocalPlatform":
        config = load_config([self.folder / "wrangler_like.toml"])
        self.host = Host(config, state_dir=self.folder / "state" if self.persist else None, clock=self.clock)
        await self.host.start()
        return self

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.stop()

    @property
    def plugin(self) -> Any:
        assert self.host is not None
        return self.host.plugin("workflows")

    def workflow(self, binding: str, worker: str | None = None) -> Any:
        assert self.host is not None
        return self.plugin.workflow_handle(worker or self.host.config.primary.name, binding)

    def mocks(self, workflow: str) -> Any:
        return self.plugin.mocks(workflow)

    async def settle(self) -> None:
        assert self.host is not None
        await self.host.wait_idle()

    async def advance(self, seconds: float) -> None:
        """Move virtual time, firing each due timer in turn and letting its work settle."""
        assert self.host is not None
        target = self.clock.now() + seconds
        while True:
            await self.host.wait_idle()
            due = self.clock.next_due()
            if due is None or due > target:
                break
            self.clock.set_time(due)
            self.clock.fire_due()
        self.clock.set_time(target)
        self.clock.fire_due()
        await self.host.wait_idle()

    async def jump(self, seconds: float) -> None:
        """Move virtual time and fire due timers without waiting for running work to end."""
        self.clock.set_time(self.clock.now() + seconds)
        self.clock.fire_due()
        for _ in range(5):
            await asyncio.sleep(0)

    async def fetch(self, path: str, *, worker: str | None = None, method: str = "GET",
                    body: bytes = b"") -> tuple[int, bytes]:
        assert self.host is not None
        name = worker or self.host.config.primary.name
        status, _headers, data = await self.host.fetch(name, method, f"http://{name}.localhost{path}", [], body)
        return status, data


async def until(predicate: Any, timeout: float = 10.0) -> None:
    """Wait (real time) until ``predicate()`` is true; for files written by isolates."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
