"""``p.ai("AI")``: set what ``env.AI.run`` answers in tests, and call it from outside."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.ai.plugin import Plugin


class AIHandle:
    def __init__(self, plugin: Plugin, worker: str, binding: str) -> None:
        self._plugin = plugin
        self._key = (worker, binding)

    def mock(self, model: str, result: Any) -> AIHandle:
        """``env.AI.run(model, ...)`` answers ``result`` (data: dicts, lists, str, numbers).
        ``model="*"`` answers every model without a mock of its own."""
        self._plugin.mocks.setdefault(self._key, {})[model] = result
        return self

    def clear(self) -> None:
        """Forget every mock of this binding."""
        self._plugin.mocks.pop(self._key, None)

    async def run(self, model: str, inputs: Any, options: Any = None) -> Any:
        """What ``env.AI.run`` answers inside the Worker."""
        worker, binding = self._key
        return await self._plugin.handle_call(worker, binding, "run", [model, inputs, options])

    def __repr__(self) -> str:
        return f"<Workers AI binding {self._key[1]} of Worker {self._key[0]!r}, host handle>"
