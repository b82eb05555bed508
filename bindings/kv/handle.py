"""The outside handle: a KV namespace reached from the host process (tests, seeding).

``Plugin.test_handle(worker, binding)`` returns one. It has the same async methods, names and
result shapes as ``env.NS`` inside a Worker, but calls storage directly: no isolate, no
channel, so a test can seed and inspect state even while Workers are busy.
"""

from __future__ import annotations

from typing import Any

from edgelet.bindings.kv.binding import KVNamespaceAPI
from edgelet.bindings.kv.storage import KVStorage


class KVNamespaceHandle(KVNamespaceAPI):
    """A KV namespace as a Worker sees it, from outside the Worker."""

    def __init__(self, storage: KVStorage, namespace: str, label: str) -> None:
        super().__init__(label)
        self.storage = storage
        #: the namespace id (shared by every Worker that binds it)
        self.namespace = namespace

    async def _call(self, method: str, *args: Any) -> Any:
        return await self.storage.call(self.namespace, f"{self._label}.{_NAMES.get(method, method)}()",
                                 method, list(args))

    def __repr__(self) -> str:
        return f"<KV namespace {self._label} (id {self.namespace!r}), host handle>"


_NAMES = {"get_many": "get"}
