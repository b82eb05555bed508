"""``from workers import DurableObject``: the base class of a Durable Object (isolate side)."""

from __future__ import annotations

from typing import Any


class DurableObject:
    """Subclass for a Durable Object class; ``self.ctx.storage`` is its storage."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env
