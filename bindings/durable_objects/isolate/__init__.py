"""Worker side of Durable Objects: ``env.NS`` for callers, ``handle_event`` for owners.

An isolate can be both: a Worker that binds its own class delivers calls to its objects
itself (``local.py``), since the host would route them back to this isolate's
:class:`LiveObjects` anyway; calls to another Worker's classes go through the host.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelet.bindings.durable_objects.isolate.entrypoint import DurableObject
from edgelet.bindings.durable_objects.isolate.gate import CURRENT_EVENT, chain_of, outgoing
from edgelet.bindings.durable_objects.isolate.objects import LiveObjects, trim_memory
from edgelet.bindings.durable_objects.isolate.stub import KIND, DurableObjectNamespace

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

SDK_EXPORTS = {"DurableObject": DurableObject}
ENTRYPOINT_BASES = (DurableObject,)

_manager: LiveObjects | None = None


def manager(runtime: IsolateServices) -> LiveObjects:
    global _manager
    if _manager is None or _manager.runtime is not runtime:
        _manager = LiveObjects(runtime)
    return _manager


def setup(runtime: IsolateServices, options: dict[str, Any]) -> None:
    """This isolate runs Durable Object classes (``Plugin.isolate_options``)."""
    live = manager(runtime)
    live.owner = True
    from edgelet.bindings.durable_objects.isolate.websockets import pin
    from edgelet.runtime import websocket
    websocket.on_accept = pin
    live.delete_all_deletes_alarm = bool(options.get("delete_all_deletes_alarm", True))
    live.call_timeout = float(options.get("call_timeout_s") or 0.0)
    if options.get("alarm_timeout_s"):
        live.alarm_timeout = float(options["alarm_timeout_s"])
    if options.get("root"):  # --in-memory: the host's scratch folder
        live.root = Path(options["root"])


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> Any:
    namespace, class_name = options["namespace"], options["class_name"]
    #: this Worker defines the class: its objects live in this isolate (see local.py)
    own_class = options["script"] == runtime.worker

    async def send(id_hex: str, object_name: str | None, kind: str, method: str, payload: Any) -> Any:
        # an object's event waiting for this call lets its object's next event in (gate.py)
        event = CURRENT_EVENT.get()
        chain = chain_of(event)
        target = f"{class_name} {object_name!r}" if object_name else f"{class_name} {id_hex}"
        async with outgoing(event, f"{target} {'fetch' if kind == 'fetch' else method}()"):
            live = _manager
            if own_class and live is not None and live.owner and live.runtime is runtime:
                return await live.call_local(namespace, class_name, id_hex, object_name, kind,
                                             method, payload, chain)
            return await runtime.call(KIND, name, "call", id_hex, object_name, kind, method,
                                      payload, list(chain))

    return DurableObjectNamespace(name, options, send)


async def handle_event(runtime: IsolateServices, event: str, payload: Any) -> Any:
    """``durable_objects.call`` (fetch / RPC / alarm), ``.inspect``, ``.query`` and ``.dump``."""
    live = manager(runtime)
    if event == "call":
        return await live.call(payload)
    if event == "websocket":  # a hibernatable socket's message or close (edgelet.websockets)
        from edgelet.bindings.durable_objects.isolate.websockets import on_event
        return await on_event(live, payload)
    if event == "inspect":
        return live.inspect(payload)
    if event == "query":
        return live.query(payload)
    if event == "dump":
        return live.dump(payload)
    if event == "evict":
        for key in list(live.objects):
            if live.objects[key].idle:
                live.evict(key)
        trim_memory()
        return len(live.objects)
    raise LookupError(f"unknown durable_objects event {event!r}")
