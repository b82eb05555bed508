"""The isolate halves of every binding kind, found once per isolate.

Each binding's ``isolate.py`` may name what it adds to the Worker's world, so neither the
``workers`` module nor the isolate hard-codes a kind:

``SDK_EXPORTS``
    names added to ``workers`` (``DurableObject``, ``WorkflowEntrypoint``).
``ENTRYPOINT_BASES``
    base classes whose subclasses the platform runs (a script that defines only a Durable
    Object class is a valid Worker).
``JS_GLOBALS``
    names added to the ``js`` module (the Cache API's ``caches``).
``HANDLERS``
    handler names of a Worker entrypoint the kind calls (``queue``): the platform reports
    them at start and keeps them off RPC.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType
from typing import Any

import edgelet.bindings

#: handlers of the platform itself (HTTP and crons)
PLATFORM_HANDLERS = ("fetch", "scheduled")


@cache
def isolate_halves() -> dict[str, ModuleType]:
    """kind -> its ``isolate`` module, for every binding package that has one."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(edgelet.bindings.search_path()), key=lambda i: i.name):
        if not info.ispkg:
            continue
        name = f"edgelet.bindings.{info.name}.isolate"
        try:
            found[info.name] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


@cache
def sdk_exports() -> dict[str, Any]:
    """Every kind's ``SDK_EXPORTS``, merged (the names ``from workers import`` offers)."""
    names: dict[str, Any] = {}
    for module in isolate_halves().values():
        names.update(getattr(module, "SDK_EXPORTS", {}))
    return names


@cache
def entrypoint_bases() -> tuple[type, ...]:
    """``WorkerEntrypoint`` and every kind's ``ENTRYPOINT_BASES``."""
    from edgelet.runtime.entrypoints import WorkerEntrypoint
    bases: list[type] = [WorkerEntrypoint]
    for module in isolate_halves().values():
        bases.extend(getattr(module, "ENTRYPOINT_BASES", ()))
    return tuple(bases)


@cache
def handler_names() -> tuple[str, ...]:
    """``fetch``, ``scheduled`` and every kind's ``HANDLERS``."""
    names = list(PLATFORM_HANDLERS)
    for module in isolate_halves().values():
        names.extend(h for h in getattr(module, "HANDLERS", ()) if h not in names)
    return tuple(names)


@cache
def js_globals() -> dict[str, Any]:
    """Every kind's ``JS_GLOBALS``, merged (names ``from js import`` offers beyond its own)."""
    names: dict[str, Any] = {}
    for module in isolate_halves().values():
        names.update(getattr(module, "JS_GLOBALS", {}))
    return names
