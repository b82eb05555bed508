"""Host side of KV: owns the storage, answers Workers' calls, the control API and the CLI."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.kv.schema import DATABASE
from edgelet.bindings.kv.storage import KVStorage

if TYPE_CHECKING:  # pragma: no cover
    import click
    from starlette.routing import BaseRoute

    from edgelet.bindings.kv.handle import KVNamespaceHandle
    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.kv")



class Plugin(BindingPlugin):
    kind = "kv"
    test_accessor = "kv"

    def __init__(self) -> None:
        super().__init__()
        self.storage: KVStorage | None = None
        #: (worker, binding) -> namespace id
        self.bindings: dict[tuple[str, str], str] = {}

    def configure(self, config: PlatformConfig) -> None:
        self.bindings = {(w.name, d.binding): d.id for w in config.workers for d in w.decls(self.kind)}

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        return {decl.binding: {"namespace": decl.id} for decl in worker.decls(self.kind)}

    async def start(self, host: HostServices) -> None:
        await super().start(host)
        self.storage = KVStorage(host.database(DATABASE), host.clock)
        self.storage.record_bindings((w, b, ns) for (w, b), ns in self.bindings.items())
        if self.bindings:
            log.debug("KV namespaces: %s", ", ".join(
                f"{w}.{b}={ns!r}" for (w, b), ns in sorted(self.bindings.items())))

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        assert self.storage is not None
        ns = self.bindings.get((worker, binding))
        if ns is None:
            return await super().handle_call(worker, binding, method, args)
        return await self.storage.call(ns, f"env.{binding}.{'get' if method == 'get_many' else method}()",
                                 method, args)

    async def stop(self) -> None:
        if self.storage is not None:
            self.storage.group.flush()

    # -- outside handle (edgelet.testing) --------------------------------------------------------
    def test_handle(self, worker: str, binding: str) -> KVNamespaceHandle:
        """The KV namespace bound as ``binding``: same async methods as ``env.BINDING``."""
        from edgelet.bindings.kv.handle import KVNamespaceHandle  # tests only: not imported by `dev`
        if self.storage is None:
            raise RuntimeError("the KV plug-in is not started; start the platform first")
        ns = self.bindings.get((worker, binding))
        if ns is None:
            known = ", ".join(f"{w}.{b}" for w, b in sorted(self.bindings)) or "none"
            raise LookupError(f"Worker {worker!r} has no KV binding {binding!r}; KV bindings: "
                              f"{known}. Add it under kv_namespaces in the Worker's config.")
        return KVNamespaceHandle(self.storage, ns, f"{worker}.env.{binding}")

    # -- names for the control API -----------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """A namespace id from an id or a binding name; LookupError naming what exists."""
        assert self.storage is not None
        ids = set(self.bindings.values())
        if name in ids:
            return name
        # A binding name used by several Workers means the first Worker's (config order),
        # as wrangler's --binding means the primary config's.
        for (_, b), ns in self.bindings.items():
            if b == name:
                return ns
        if name in self.storage.key_counts():
            return name
        known = ", ".join(sorted(ids | {b for _, b in self.bindings})) or "none configured"
        raise LookupError(f"no KV namespace or binding named {name!r}; known: {known}")

    def namespaces(self) -> list[dict[str, Any]]:
        """Every configured or stored namespace with its bindings and live key count."""
        assert self.storage is not None
        counts = self.storage.key_counts()
        out: dict[str, dict[str, Any]] = {}
        for (worker, binding), ns in sorted(self.bindings.items()):
            entry = out.setdefault(ns, {"id": ns, "title": ns, "bindings": [], "key_count": 0})
            entry["bindings"].append({"worker": worker, "binding": binding})
        for ns in counts:
            out.setdefault(ns, {"id": ns, "title": ns, "bindings": [], "key_count": 0})
        for ns, entry in out.items():
            entry["key_count"] = counts.get(ns, 0)
        return [out[ns] for ns in sorted(out)]

    def routes(self) -> list[BaseRoute]:
        from edgelet.bindings.kv.routes import routes
        return routes(self)

    def cli(self) -> click.Group | None:
        from edgelet.bindings.kv.cli import kv
        return kv
