"""A namespace seen from the host process, for tests: ``plugin.namespace_handle(worker, binding)``.

It offers what ``env.NS`` offers inside a Worker (``idFromName``, ``newUniqueId``,
``idFromString``, ``get``, ``getByName``; stubs with ``fetch`` and RPC) plus
``await storage(id)`` to look at an object's key-value pairs. Arguments are pickled here,
in the test process, from the test's own values; answers are unpickled here too. That is
fine for a test handle; the server itself only forwards these bytes (SPEC 6).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from edgelet.bindings.durable_objects import ids, wire
from edgelet.bindings.durable_objects.ids import DurableObjectId

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.plugin import Namespace, Plugin


class NamespaceHandle:
    """``p.durable_object("NS")``: the namespace from outside the Workers."""

    def __init__(self, plugin: Plugin, namespace: Namespace) -> None:
        self._plugin = plugin
        self.namespace = namespace

    def idFromName(self, name: str) -> DurableObjectId:  # noqa: N802
        return DurableObjectId(ids.id_from_name(self.namespace.id, name), name)

    def newUniqueId(self, options: Any = None, **kwargs: Any) -> DurableObjectId:  # noqa: N802
        return DurableObjectId(ids.new_unique_id())

    def idFromString(self, value: str) -> DurableObjectId:  # noqa: N802
        return DurableObjectId(ids.check_id(value))

    def get(self, object_id: Any, options: Any = None, **kwargs: Any) -> HostStub:
        if isinstance(object_id, str):
            object_id = self.idFromString(object_id)
        if not isinstance(object_id, DurableObjectId):
            raise TypeError(f"get() takes an id from idFromName(), newUniqueId() or "
                            f"idFromString(), got {type(object_id).__name__}")
        return HostStub(self, object_id)

    def getByName(self, name: str, options: Any = None, **kwargs: Any) -> HostStub:  # noqa: N802
        return HostStub(self, self.idFromName(name))

    id_from_name = idFromName
    new_unique_id = newUniqueId
    id_from_string = idFromString
    get_by_name = getByName

    def _id(self, ref: Any) -> str:
        if isinstance(ref, DurableObjectId):
            return ref.toString()
        if isinstance(ref, HostStub):
            return ref.id.toString()
        return ids.check_id(ref)

    async def storage(self, object_id: Any) -> dict[str, Any]:
        """Every key-value pair the object stored, in key order."""
        assert self._plugin.host is not None
        blob = await self._plugin.host.invoke(self.namespace.script, "durable_objects.dump",
                                              [self.namespace.name, self._id(object_id)], cancel=True)
        return wire.loads(blob)

    async def alarm(self, object_id: Any) -> int | None:
        """The object's alarm time (ms since the epoch) or None."""
        assert self._plugin.alarms is not None
        return self._plugin.alarms.get(self.namespace.name, self._id(object_id))

    async def inspect(self, object_id: Any) -> dict[str, Any]:
        """What ``GET .../objects/{id}`` shows: keys with values, SQL tables with row counts."""
        return await self._plugin.inspect(self.namespace, self._id(object_id))

    async def objects(self) -> list[dict[str, Any]]:
        """The objects of this namespace from the host index (id, name, last used, alarm)."""
        assert self._plugin.index is not None
        self._plugin.index.flush()
        return self._plugin.index.list(self.namespace.name, limit=1_000_000)

    def __repr__(self) -> str:
        return f"<NamespaceHandle {self.namespace.name}>"


class _HostRpc:
    __slots__ = ("_stub", "_name")

    def __init__(self, stub: HostStub, name: str) -> None:
        self._stub = stub
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        payload = wire.dumps_args(args, kwargs, f"{self._stub._where}.{self._name}()")
        return self._stub._send("call", self._name, payload)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._stub._send("get", self._name, b"").__await__()


class HostStub:
    """A stub usable from the test process; same surface as a stub inside a Worker."""

    def __init__(self, handle: NamespaceHandle, object_id: DurableObjectId) -> None:
        self._handle = handle
        self.id = object_id
        self.name = object_id.name
        self._where = f"{handle.namespace.class_name} {object_id.name or object_id}"

    async def _call(self, kind: str, method: str, payload: Any) -> list[Any]:
        plugin = self._handle._plugin
        return await plugin.call_object(self._handle.namespace, self.id.toString(), self.name,
                                        kind, method, payload, [])

    async def _send(self, kind: str, method: str, payload: bytes) -> Any:
        answer = await self._call(kind, method, payload)
        if answer[0] != wire.OK:
            raise wire.rebuild_error(answer, f"{self._where}.{method}")
        return wire.loads(answer[1])

    async def fetch(self, resource: Any, options: Any = None, **kwargs: Any) -> Any:
        from edgelet.runtime.http_types import Request, request_to_wire, response_from_wire
        opts = {**(options or {}), **kwargs}
        url = resource.url if isinstance(resource, Request) else str(resource)
        if url.startswith("/"):
            url = f"http://{self._handle.namespace.class_name.lower()}.durable-object{url}"
        req = resource if isinstance(resource, Request) and not opts else Request(
            resource if isinstance(resource, Request) else url, method=opts.get("method"),
            headers=opts.get("headers"), body=opts.get("body"))
        answer = await self._call("fetch", "fetch", request_to_wire(req))
        if answer[0] != wire.OK:
            raise wire.rebuild_error(answer, f"{self._where} fetch")
        return response_from_wire(answer[1], req.url)

    def __getattr__(self, name: str) -> _HostRpc:
        if name.startswith("_"):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"{self._handle.namespace.class_name}.{name} is private (its name "
                                 f"starts with '_'); Durable Object RPC reaches public methods only")
        return _HostRpc(self, name)

    def __repr__(self) -> str:
        return f"<HostStub {self._handle.namespace.name} {self.id}>"
