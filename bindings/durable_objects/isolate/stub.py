"""The caller side: ``env.NS`` (a namespace) and the stubs it hands out.

A stub does not hold the object: every ``fetch`` or RPC goes isolate -> host -> the
isolate of the Worker that defines the class (see ``objects.py``), which keeps the
one-instance-per-id rule; a call from that very isolate is delivered in place, without
the trip (``local.py``). Arguments and results are pickled here and in the owner (the
host forwards them as bytes), so an object never shares a value with its caller.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from edgelet.bindings.durable_objects import ids, wire
from edgelet.bindings.durable_objects.ids import DurableObjectId
from edgelet.runtime.rpc_values import check_rpc_args

KIND = "durable_objects"
#: names whose ids a namespace remembers
_NAME_CACHE = 4096


class DurableObjectNamespace:
    """``env.NS``: ``idFromName``, ``newUniqueId``, ``idFromString``, ``get``, ``getByName``."""

    def __init__(self, binding: str, options: dict[str, Any],
                 send: Callable[..., Any]) -> None:
        self._binding = binding
        self._ns_id = options["namespace_id"]
        self._class = options["class_name"]
        self._script = options["script"]
        self._send = send
        #: name -> id: a request usually names an object it named before (a SHA-256 each)
        self._names: dict[str, str] = {}

    def idFromName(self, name: str) -> DurableObjectId:  # noqa: N802 - Cloudflare's name
        """The same name gives the same id, everywhere and always."""
        hex_id = self._names.get(name) if isinstance(name, str) else None
        if hex_id is None:
            hex_id = ids.id_from_name(self._ns_id, name)
            if len(self._names) >= _NAME_CACHE:  # a Worker that makes endless names
                self._names.clear()
            self._names[name] = hex_id
        return DurableObjectId(hex_id, name)

    def newUniqueId(self, options: Any = None, **kwargs: Any) -> DurableObjectId:  # noqa: N802
        """A fresh random id (``jurisdiction`` is accepted and has no effect locally)."""
        return DurableObjectId(ids.new_unique_id())

    def idFromString(self, value: str) -> DurableObjectId:  # noqa: N802
        """The id whose ``toString()`` is ``value``; ValueError unless it is 64 hex characters."""
        return DurableObjectId(ids.check_id(value, where=f"{self._binding}.idFromString()"))

    def get(self, object_id: Any, options: Any = None, **kwargs: Any) -> DurableObjectStub:
        """A stub for the object ``object_id`` (an id from this namespace)."""
        if isinstance(object_id, str):
            object_id = self.idFromString(object_id)
        if not isinstance(object_id, DurableObjectId):
            raise TypeError(f"{self._binding}.get() takes an id from idFromName(), newUniqueId() "
                            f"or idFromString(), got {type(object_id).__name__}; "
                            f"use getByName(name) for a name")
        return DurableObjectStub(self, object_id)

    def getByName(self, name: str, options: Any = None, **kwargs: Any) -> DurableObjectStub:  # noqa: N802
        return DurableObjectStub(self, self.idFromName(name))

    def jurisdiction(self, name: str) -> DurableObjectNamespace:
        """Jurisdictions restrict where objects run in Cloudflare; locally there is one place."""
        return self

    id_from_name = idFromName
    new_unique_id = newUniqueId
    id_from_string = idFromString
    get_by_name = getByName

    def __repr__(self) -> str:
        return f"<DurableObjectNamespace {self._binding} -> {self._script}.{self._class}>"


class _RpcMethod:
    """``stub.name``: call it for RPC, or await it to read a property."""

    __slots__ = ("_stub", "_name")

    def __init__(self, stub: DurableObjectStub, name: str) -> None:
        self._stub = stub
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:  # what Cloudflare's RPC refuses (a tuple, a bytearray, an own class)
            check_rpc_args(args, kwargs, self._call_name)
        try:
            payload = wire.dumps((args, kwargs))
        except Exception:  # raises the TypeError naming the argument that cannot travel
            payload = wire.dumps_args(args, kwargs, f"{self._stub._where}.{self._name}()")
        return self._stub._rpc("call", self._name, payload)

    def _call_name(self) -> str:
        return f"{self._stub._where}.{self._name}()"

    def __await__(self) -> Generator[Any, None, Any]:
        return self._stub._rpc("get", self._name, b"").__await__()

    def __repr__(self) -> str:
        return f"<rpc {self._stub._where}.{self._name}>"


class DurableObjectStub:
    """A handle on one object: ``await stub.fetch(...)`` and ``await stub.method(...)``."""

    def __init__(self, namespace: DurableObjectNamespace, object_id: DurableObjectId) -> None:
        self._ns = namespace
        self.id = object_id
        self.name = object_id.name

    @property
    def _where(self) -> str:
        """How messages name the object: its class and its name (or id)."""
        return f"{self._ns._class} {self.id.name or self.id}"

    async def fetch(self, resource: Any, options: Any = None, **kwargs: Any) -> Any:
        """Send an HTTP request to the object's ``fetch(self, request)``."""
        from edgelet.runtime.http_types import buffered, request_for_fetch, request_to_wire, response_from_wire
        req = request_for_fetch(await buffered(resource), options, kwargs,
                                f"http://{self._ns._class.lower()}.durable-object")
        answer = await self._ns._send(self.id.toString(), self.name, "fetch", "fetch",
                                      request_to_wire(req))
        if answer[0] != wire.OK:
            raise wire.rebuild_error(answer, f"{self._where} fetch")
        return response_from_wire(answer[1], req.url)

    async def _rpc(self, kind: str, method: str, payload: bytes) -> Any:
        answer = await self._ns._send(self.id.toString(), self.name, kind, method, payload)
        if answer[0] != wire.OK:
            raise wire.rebuild_error(answer, f"{self._where}.{method}")
        return wire.loads(answer[1])

    def __getattr__(self, name: str) -> _RpcMethod:
        if name.startswith("_"):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            raise AttributeError(
                f"{self._ns._class}.{name} is private (its name starts with '_'); Durable Object "
                f"RPC reaches public methods only")
        return _RpcMethod(self, name)

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._ns._binding} {self.id}>"
