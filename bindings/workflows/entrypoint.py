"""``from workers import WorkflowEntrypoint``: the base class of a workflow (isolate side)."""

from __future__ import annotations

from typing import Any


class WorkflowEntrypoint:
    """Subclass with ``async def run(self, event, step)`` for a Workflow."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env
