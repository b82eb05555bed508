"""Worker side of Durable Objects: ``env.NS`` for callers, ``handle_event`` for owners.

An isolate can be both: a Worker that binds its own class calls its objects through the
host like anyone else, and the host hands the events back to this isolate's
:class:`LiveObjects`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgelet.bindings.durable_objects.objects import CALL_CHAIN, LiveObjects, trim_memory
from edgelet.bindings.durable_objects.stub import KIND, DurableObjectNamespace

#: the name of the host channel an owner isolate uses for alarms (see plugin.SYSTEM_BINDING)
_manager: LiveObjects | None = None


def manager(runtime: Any) -> LiveObjects:
    global _manager
    if _manager is None or _manager.runtime is not runtime:
        _manager = LiveObjects(runtime)
    return _manager


def make_binding(name: str, options: dict[str, Any], runtime: Any) -> Any:
    if options.get("system"):
        # The owner's own channel to the host (alarms). It is a binding only so the host
        # lets the isolate call it; it is taken out of ``env`` before any user code runs
        # (``init`` finishes building env and importing the script first).
        live = manager(runtime)
        live.system_binding = name
        live.delete_all_deletes_alarm = bool(options.get("delete_all_deletes_alarm", True))
        if options.get("root"):  # --in-memory: the host's scratch folder
            live.root = Path(options["root"])
        asyncio.get_running_loop().call_soon(_hide, runtime, name)
        return None

    async def send(id_hex: str, object_name: str | None, kind: str, method: str, payload: Any) -> Any:
        return await runtime.call(KIND, name, "call", id_hex, object_name, kind, method, payload,
                                  list(CALL_CHAIN.get()))

    return DurableObjectNamespace(name, options, send)


def _hide(runtime: Any, name: str) -> None:
    values = getattr(runtime.env, "_values", None)
    if isinstance(values, dict):
        values.pop(name, None)


async def handle_event(runtime: Any, event: str, payload: Any) -> Any:
    """``durable_objects.call`` (fetch / RPC / alarm), ``.inspect`` and ``.dump``."""
    live = manager(runtime)
    if event == "call":
        return await live.call(payload)
    if event == "inspect":
        return live.inspect(payload)
    if event == "dump":
        return live.dump(payload)
    if event == "evict":
        for key in list(live.objects):
            if live.objects[key].idle:
                live.evict(key)
        trim_memory()
        return len(live.objects)
    raise LookupError(f"unknown durable_objects event {event!r}")
