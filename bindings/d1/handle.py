"""The outside handle: a D1 database reached from the host process (``p.d1("DB")``).

It has the same async methods, names and result shapes as ``env.DB`` inside a Worker, but
calls storage directly: no isolate, no channel, so a test can seed and inspect tables even
while Workers are busy.
"""

from __future__ import annotations

from typing import Any

from edgelet.bindings.d1.api import D1DatabaseAPI
from edgelet.bindings.d1.storage import D1Store


class D1DatabaseHandle(D1DatabaseAPI):
    """A D1 database as a Worker sees it, from outside the Worker."""

    def __init__(self, store: D1Store, database_id: str, label: str) -> None:
        super().__init__(label)
        self.store = store
        #: the database id (shared by every Worker that binds it)
        self.database_id = database_id

    async def _call(self, method: str, *args: Any) -> Any:
        return await self.store.acall(self.database_id, self._label, method, list(args))

    def __repr__(self) -> str:
        return f"<D1 database {self._label} (id {self.database_id!r}), host handle>"
