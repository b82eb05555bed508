"""Host side of Durable Objects: routes calls to the isolate that runs the class.

A call from ``env.NS`` arrives here as bytes the host does not read; it goes to the Worker
whose script defines the class (``script_name``, or the declaring Worker) as the event
``durable_objects.call``. That isolate keeps the live instances (``objects.py``), so there
is one instance per id on the whole platform. The host keeps only the index of objects
and their alarms (``index.py``, ``alarms.py``), and never opens an object's database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.durable_objects import ids
from edgelet.bindings.durable_objects.alarms import ALARM_ANSWER_GRACE_S, AlarmScheduler, alarm_timeout
from edgelet.bindings.durable_objects.index import ObjectIndex
from edgelet.bindings.durable_objects.schema import INDEX_DATABASE
from edgelet.bindings.durable_objects.scratch import make_scratch, remove_scratch
from edgelet.bindings.durable_objects.wire import ObjectEvent
from edgelet.supervisor import IsolateError

if TYPE_CHECKING:  # pragma: no cover
    import click
    from starlette.routing import BaseRoute

    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.durable_objects")

#: Cloudflare's deleteAll() also deletes the alarm from this compatibility date on
DELETE_ALL_ALARM_DATE = "2026-02-24"
_KINDS = frozenset({"fetch", "call", "get"})


@dataclass
class Namespace:
    """A class in a script: every binding that names it reaches the same objects."""

    name: str
    id: str
    script: str
    class_name: str
    bindings: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "class": self.class_name, "script": self.script,
                "binding": self.bindings[0][1] if self.bindings else None,
                "bindings": [{"worker": w, "binding": b} for w, b in self.bindings]}


def build_namespaces(config: PlatformConfig) -> dict[str, Namespace]:
    found: dict[str, Namespace] = {}
    for worker in config.workers:
        for decl in worker.decls("durable_objects"):
            script = decl.script_name or worker.name
            name = ids.namespace_name(script, decl.class_name)
            ns = found.get(name)
            if ns is None:
                ns = found[name] = Namespace(name, ids.namespace_id(script, decl.class_name),
                                             script, decl.class_name)
            ns.bindings.append((worker.name, decl.binding))
    return found


class Plugin(BindingPlugin):
    kind = "durable_objects"

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: dict[str, Namespace] = {}
        self._by_binding: dict[tuple[str, str], Namespace] = {}
        self.index: ObjectIndex | None = None
        self.alarms: AlarmScheduler | None = None
        #: with --in-memory, the folder of the object databases (see scratch.py)
        self.scratch: Path | None = None

    # -- configuration -----------------------------------------------------------------
    def configure(self, config: PlatformConfig) -> None:
        self.namespaces = build_namespaces(config)
        self._by_binding = {wb: ns for ns in self.namespaces.values() for wb in ns.bindings}

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for decl in worker.decls(self.kind):
            ns = self._by_binding[(worker.name, decl.binding)]
            out[decl.binding] = {"namespace_id": ns.id, "namespace": ns.name,
                                 "class_name": ns.class_name, "script": ns.script}
        return out

    def isolate_options(self, worker: WorkerConfig) -> dict[str, Any] | None:
        """An isolate that runs Durable Object classes keeps their live objects and asks
        the host for alarms."""
        if not any(ns.script == worker.name for ns in self.namespaces.values()):
            return None
        date = worker.compatibility_date
        return {"delete_all_deletes_alarm": not date or date >= DELETE_ALL_ALARM_DATE,
                "root": str(self.scratch / "do") if self.scratch else None,
                "call_timeout_s": worker.limits.request_timeout_ms / 1000.0,
                "alarm_timeout_s": alarm_timeout()}

    # -- life cycle --------------------------------------------------------------------
    async def start(self, host: HostServices) -> None:
        await super().start(host)
        if host.state_dir is None:
            self.scratch = make_scratch()
        self.index = ObjectIndex(host.database(INDEX_DATABASE), host.clock.now_ms)
        self.alarms = AlarmScheduler(host, self.index, self._dispatch_alarm)

    async def after_start(self) -> None:
        """Isolates are up: arm the earliest alarm (past-due ones fire now)."""
        assert self.alarms is not None
        self.alarms.start()

    async def stop(self) -> None:
        if self.alarms is not None:
            self.alarms.stop()
        if self.index is not None:
            self.index.flush()
        remove_scratch(self.scratch)
        self.scratch = None

    # -- calls from isolates --------------------------------------------------------------
    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        if method == "call":
            ns = self._by_binding.get((worker, binding))
            if ns is None:
                raise PermissionError(f"Worker {worker!r} has no Durable Object binding {binding!r}")
            id_hex, name, kind, op, payload, chain = args
            if kind not in _KINDS:
                raise ValueError(f"unknown Durable Object call kind {kind!r}")
            return await self.call_object(ns, id_hex, name, kind, op, payload, chain)
        return await super().handle_call(worker, binding, method, args)

    async def handle_isolate_call(self, worker: str, method: str, args: list[Any]) -> Any:
        """Alarms of an object, and uses of objects the isolate that runs their class
        called itself (isolate/local.py), asked by that isolate."""
        if method == "touch":
            assert self.index is not None
            for entry in args[0]:
                ns, id_hex = self._owned(worker, entry)
                name = entry[2]
                if name is not None and not isinstance(name, str):
                    raise TypeError("object name must be a str")
                self.index.touch(ns.name, id_hex, name)
            return None
        if method in ("getAlarm", "setAlarm", "deleteAlarm"):
            ns, id_hex = self._owned(worker, args)
            assert self.alarms is not None
            if method == "getAlarm":
                return self.alarms.get(ns.name, id_hex)
            if method == "setAlarm":
                when = args[2]
                if isinstance(when, bool) or not isinstance(when, int):
                    raise TypeError(f"setAlarm(): expected ms since the epoch, got {when!r}")
                self.alarms.set(ns.name, id_hex, when)
                return None
            self.alarms.delete(ns.name, id_hex)
            return None
        return await super().handle_isolate_call(worker, method, args)

    def _owned(self, worker: str, args: list[Any]) -> tuple[Namespace, str]:
        """An owner isolate may touch alarms of its own classes' objects only."""
        ns = self.namespaces.get(str(args[0]))
        if ns is None or ns.script != worker:
            raise PermissionError(f"Worker {worker!r} does not run Durable Object namespace {args[0]!r}")
        return ns, ids.check_id(args[1], where="alarm")

    async def call_object(self, ns: Namespace, id_hex: Any, name: Any, kind: str, op: Any,
                          payload: Any, chain: Any = ()) -> Any:
        """Deliver one event to the object's owner isolate; the answer passes through unread."""
        assert self.host is not None and self.index is not None
        id_hex = ids.check_id(id_hex, where=f"{ns.class_name} stub")
        if name is not None and not isinstance(name, str):
            raise TypeError("object name must be a str")
        if not isinstance(op, str):
            raise TypeError("method name must be a str")
        self.index.touch(ns.name, id_hex, name)
        try:
            return await self.host.invoke(ns.script, "durable_objects.call", ObjectEvent(
                ns.name, ns.class_name, id_hex, name, kind, op, payload,
                [str(c) for c in (chain or ())]), cancel=True)
        except IsolateError as exc:  # the object's isolate died or hung: say which object
            what = f"{ns.class_name} {name!r} (id {id_hex})" if name else f"{ns.class_name} {id_hex}"
            raise IsolateError(f"Durable Object {what}: {exc}; the next call re-creates the "
                               f"object from its storage", exc.status) from None

    async def _dispatch_alarm(self, ns_name: str, id_hex: str, name: str | None, retry: int,
                              final: bool, now_ms: int) -> Any:
        ns = self.namespaces.get(ns_name)
        if ns is None:
            raise LookupError(f"namespace {ns_name!r} is no longer in the configuration")
        assert self.host is not None
        # the isolate cancels a handler at its wall-time limit and answers; the host waits
        # a little longer, so a retry never starts while the handler still runs
        return await self.host.invoke(ns.script, "durable_objects.call", ObjectEvent(
            ns.name, ns.class_name, id_hex, name, "alarm", "alarm", [retry, final, now_ms], []),
            timeout=alarm_timeout() + ALARM_ANSWER_GRACE_S, cancel=True)

    # -- lookups for the API, CLI and tests -------------------------------------------------
    def resolve(self, ref: str, worker: str | None = None) -> Namespace:
        """A namespace by its name, id, class or binding name (``worker`` narrows bindings)."""
        if worker is not None:
            ns = self._by_binding.get((worker, ref))
            if ns is not None:
                return ns
        if ref in self.namespaces:
            return self.namespaces[ref]
        matches = {n.name: n for n in self.namespaces.values()
                   if ref in (n.id, n.class_name) or any(b == ref for _, b in n.bindings)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        if matches:
            raise ValueError(f"{ref!r} matches several Durable Object namespaces "
                             f"({', '.join(sorted(matches))}); use a namespace name")
        known = ", ".join(f"{n.name} (binding {', '.join(b for _, b in n.bindings)})"
                          for n in self.namespaces.values()) or "none configured"
        raise LookupError(f"no Durable Object namespace {ref!r}; namespaces: {known}")

    def object_id(self, ns: Namespace, ref: str) -> tuple[str, str | None]:
        """An object by id, or by name (the id ``idFromName`` gives)."""
        if ids.is_valid_id(ref.lower()):
            return ref.lower(), None
        return ids.id_from_name(ns.id, ref), ref

    def namespace_handle(self, worker: str | None, binding: str) -> Any:
        """The namespace seen from the host process (tests): stubs, ids, ``storage(id)``."""
        from edgelet.bindings.durable_objects.handle import NamespaceHandle
        return NamespaceHandle(self, self.resolve(binding, worker))

    async def inspect(self, ns: Namespace, id_hex: str, limit: int = 1000) -> dict[str, Any]:
        assert self.host is not None
        return await self.host.invoke(ns.script, "durable_objects.inspect", [ns.name, id_hex, limit],
                                     cancel=True)

    async def query(self, ns: Namespace, id_hex: str, sql: str, params: list[Any]) -> dict[str, Any]:
        """SQL in one object's database, run by the isolate that owns it."""
        assert self.host is not None
        return await self.host.invoke(ns.script, "durable_objects.query", [ns.name, id_hex, sql, params],
                                     cancel=True)

    # -- control API and CLI ---------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        from edgelet.bindings.durable_objects.routes import routes
        return routes(self)

    def cli(self) -> click.Group | None:
        from edgelet.bindings.durable_objects.cli import group
        return group
