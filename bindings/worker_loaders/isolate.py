"""Worker side of Worker Loader: ``env.LOADER.get(id, callback)`` -> a stub whose
``getEntrypoint(name=None)`` answers ``fetch`` and RPC like a service binding.

``get`` is synchronous, as in Cloudflare; the callback runs at the first use of an id the
host has not loaded yet (so once per id, not per request), and may be sync or async.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import cloudpickle

from edgelet.runtime.http_types import Request, request_for_fetch, request_to_wire, response_from_wire

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices


def _plain(value: Any) -> Any:
    """JsProxy-like objects (``to_py``) and attribute bags as plain data."""
    if hasattr(value, "to_py") and callable(value.to_py):
        value = value.to_py()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class WorkerLoader:
    """``env.LOADER``."""

    def __init__(self, name: str, runtime: IsolateServices) -> None:
        self._name = name
        self._runtime = runtime
        self._ready: set[str] = set()

    def get(self, worker_id: str, callback: Any) -> WorkerStub:
        if not callable(callback):
            raise TypeError(f"env.{self._name}.get(id, callback): callback must be callable "
                            f"(returning the Worker's code), got {type(callback).__name__}")
        return WorkerStub(self, str(worker_id), callback)

    def load(self, code: Any) -> WorkerStub:
        """A one-off Worker (no id to cache by): ``env.LOADER.load(code)``."""
        import uuid
        return WorkerStub(self, f"anonymous-{uuid.uuid4().hex}", lambda: code)

    async def _ensure(self, worker_id: str, callback: Any) -> None:
        if worker_id in self._ready:
            return
        if not await self._runtime.call("worker_loaders", self._name, "has", worker_id):
            code = callback()
            if inspect.isawaitable(code):
                code = await code
            await self._runtime.call("worker_loaders", self._name, "load", worker_id, _plain(code))
        self._ready.add(worker_id)

    def __repr__(self) -> str:
        return f"<Worker Loader binding {self._name}>"


class WorkerStub:
    """What ``get`` returns: the loaded Worker, by id."""

    def __init__(self, loader: WorkerLoader, worker_id: str, callback: Any) -> None:
        self._loader = loader
        self.id = worker_id
        self._callback = callback

    def getEntrypoint(self, name: str | None = None, options: Any = None) -> Entrypoint:  # noqa: N802
        return Entrypoint(self, name)

    get_entrypoint = getEntrypoint

    def __repr__(self) -> str:
        return f"<loaded Worker {self.id!r}>"


class Entrypoint:
    """A loaded Worker's default (or named) entrypoint: ``fetch`` and RPC methods."""

    def __init__(self, stub: WorkerStub, name: str | None) -> None:
        self._stub = stub
        self._entry = name

    async def _call(self, method: str, *args: Any) -> Any:
        loader = self._stub._loader
        await loader._ensure(self._stub.id, self._stub._callback)
        return await loader._runtime.call("worker_loaders", loader._name, method, self._stub.id, self._entry, *args)

    async def fetch(self, resource: Any, options: Any = None, **kwargs: Any) -> Any:
        if not isinstance(resource, (str, Request)):  # request._js_request, request.js_object
            resource = getattr(resource, "_js_request", None) or getattr(resource, "js_object", resource)
        from edgelet.runtime.http_types import buffered
        req = request_for_fetch(await buffered(resource), _plain(options), kwargs,
                                f"http://{self._stub.id}.loader.localhost")
        wire = await self._call("fetch", request_to_wire(req))
        return response_from_wire(wire, req.url)

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await self._call("rpc", method, cloudpickle.dumps((args, kwargs)))
            return cloudpickle.loads(result)

        call.__name__ = method
        return call


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> WorkerLoader:
    return WorkerLoader(name, runtime)
