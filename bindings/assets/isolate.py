"""Worker side of the assets binding: ``await env.ASSETS.fetch(request)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgelet.runtime.http_types import request_for_fetch, request_to_wire, response_from_wire

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices


class AssetsBinding:
    def __init__(self, name: str, runtime: IsolateServices) -> None:
        self._name = name
        self._runtime = runtime

    async def fetch(self, resource: Any, options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from edgelet.runtime.http_types import buffered
        req = request_for_fetch(await buffered(resource), options, kwargs, "http://assets.local")
        wire = await self._runtime.call("assets", self._name, "fetch", request_to_wire(req))
        return response_from_wire(wire, req.url)


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> AssetsBinding:
    return AssetsBinding(name, runtime)
