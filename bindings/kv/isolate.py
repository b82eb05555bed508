"""Worker side of KV: ``env.NS`` forwards each call to the host over the isolate channel.

All argument shaping is shared with the host-side test handle (``binding.KVNamespaceAPI``);
this class only says how a call travels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgelet.bindings.kv.binding import AttrDict, KVNamespaceAPI, KVStream

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

__all__ = ["AttrDict", "KVNamespace", "KVStream", "make_binding"]


class KVNamespace(KVNamespaceAPI):
    """``env.<binding>`` of a ``kv_namespaces`` entry."""

    def __init__(self, name: str, options: dict[str, Any], runtime: IsolateServices) -> None:
        super().__init__(f"env.{name}")
        self._name = name
        self._namespace = options.get("namespace", name)
        self._runtime = runtime

    async def _call(self, method: str, *args: Any) -> Any:
        return await self._runtime.call("kv", self._name, method, *args)

    def __repr__(self) -> str:
        return f"<KV namespace env.{self._name} (id {self._namespace!r})>"


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> KVNamespace:
    return KVNamespace(name, options, runtime)
