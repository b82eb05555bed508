"""Worker side of service bindings: ``await env.SVC.fetch(...)`` and ``await env.SVC.method(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cloudpickle

from edgelet.runtime.http_types import (
    drained,
    request_for_fetch,
    request_from_wire,
    request_to_wire,
    response_from_wire,
    response_to_wire,
)

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices


class ServiceStub:
    """``env.<binding>``: the other Worker, reachable by fetch or by RPC to its methods."""

    def __init__(self, name: str, options: dict[str, Any], runtime: IsolateServices) -> None:
        self._name = name
        self._service = options["service"]
        self._runtime = runtime

    async def fetch(self, resource: Any, options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from edgelet.runtime.http_types import buffered
        req = request_for_fetch(await buffered(resource), options, kwargs, f"http://{self._service}.localhost")
        wire = await self._runtime.call("services", self._name, "fetch", request_to_wire(req))
        return response_from_wire(wire, req.url)

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(f"env.{self._name} has no attribute {method!r}: names starting with '_' are "
                                 f"not callable over RPC (the other Worker keeps them private)")
        return RpcMember(self, method)

    def __repr__(self) -> str:
        return f"<service binding {self._name} -> {self._service}>"


class RpcMember:
    """``env.SVC.name``: called, it calls the method ``name`` of the other Worker's
    entrypoint; awaited, it reads the property or class attribute ``name`` (as Cloudflare's
    RPC stubs do: ``await env.SVC.version``)."""

    def __init__(self, stub: ServiceStub, name: str) -> None:
        self._stub = stub
        self.__name__ = name

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from edgelet.runtime.rpc_values import check_rpc_args
        stub, method = self._stub, self.__name__
        if args or kwargs:
            check_rpc_args(args, kwargs, lambda: f"env.{stub._name}.{method}()")
        return await self._rpc(cloudpickle.dumps((args, kwargs)))

    def __await__(self) -> Any:
        return self._rpc(cloudpickle.dumps(None)).__await__()  # None: read, not call

    async def _rpc(self, payload: bytes) -> Any:
        stub = self._stub
        result = await stub._runtime.call("services", stub._name, "rpc", self.__name__, payload)
        return cloudpickle.loads(result)

    def __repr__(self) -> str:
        return f"<RPC member {self.__name__} of service binding {self._stub._name}>"


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> ServiceStub:
    return ServiceStub(name, options, runtime)


async def handle_event(runtime: IsolateServices, event: str, payload: Any) -> Any:
    """``services.fetch``: a fetch to a named entrypoint's ``fetch`` method."""
    if event == "fetch":
        from edgelet.runtime.entrypoints import call_handler
        entrypoint, wire = payload
        cls = runtime.classes().get(entrypoint)
        if cls is None:
            raise LookupError(f"Worker {runtime.worker!r} has no entrypoint class {entrypoint!r}")
        instance = cls(runtime.new_context(), runtime.env)
        return response_to_wire(await drained(await call_handler(
            instance.fetch, request_from_wire(wire), runtime.env, runtime.new_context())))
    raise LookupError(f"unknown services event {event!r}")
