"""Worker side of D1: ``env.DB`` forwards each call to the host over the isolate channel.

All argument shaping is shared with the host-side test handle (``api.D1DatabaseAPI``); this
class only says how a call travels, and turns the host's ``D1Error`` back into one.
"""

from __future__ import annotations

from typing import Any

from edgelet.bindings.d1.api import D1DatabaseAPI, D1DatabaseSession, D1PreparedStatement, Row
from edgelet.bindings.d1.errors import WIRE_NAME, D1Error

__all__ = ["D1Database", "D1DatabaseSession", "D1Error", "D1PreparedStatement", "Row", "make_binding"]


class D1Database(D1DatabaseAPI):
    """``env.<binding>`` of a ``d1_databases`` entry."""

    def __init__(self, name: str, options: dict[str, Any], runtime: Any) -> None:
        super().__init__(f"env.{name}")
        self._name = name
        self._database_id = options.get("database_id", name)
        self._runtime = runtime

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await self._runtime.call("d1", self._name, method, *args)
        except Exception as exc:
            remote = getattr(exc, "remote", None)
            if remote is not None and remote.type_name == WIRE_NAME:
                raise D1Error(remote.message) from None
            raise

    def __repr__(self) -> str:
        return f"<D1 database env.{self._name} (id {self._database_id!r})>"


def make_binding(name: str, options: dict[str, Any], runtime: Any) -> D1Database:
    return D1Database(name, options, runtime)
