"""Host side of D1: owns the databases, answers Workers' calls, the control API and the CLI."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.d1.registry import Catalog, DatabaseEntry
from edgelet.bindings.d1.storage import D1Store

if TYPE_CHECKING:  # pragma: no cover
    import click
    from starlette.routing import BaseRoute

    from edgelet.bindings.d1.handle import D1DatabaseHandle
    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.d1")


class Plugin(BindingPlugin):
    kind = "d1"
    test_accessor = "d1"

    def __init__(self) -> None:
        super().__init__()
        self.store: D1Store | None = None
        #: (worker, binding) -> database id
        self.bindings: dict[tuple[str, str], str] = {}
        self.catalog = Catalog()

    def configure(self, config: PlatformConfig) -> None:
        self.bindings = {(w.name, d.binding): d.database_id for w in config.workers for d in w.decls(self.kind)}

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        return {d.binding: {"database_id": d.database_id, "database_name": d.database_name}
                for d in worker.decls(self.kind)}

    async def start(self, host: HostServices) -> None:
        await super().start(host)
        self.store = D1Store(host.state_dir)
        self.catalog = Catalog.from_config(host.config)
        if self.store.folder is not None and self.catalog.entries:
            self._record_catalog()
        if self.bindings:
            log.debug("D1 databases: %s", ", ".join(
                f"{w}.{b}={db!r}" for (w, b), db in sorted(self.bindings.items())))

    def _record_catalog(self) -> None:
        """Write ``<state>/d1/databases.json`` so the CLI can resolve names without a config."""
        assert self.store is not None and self.store.folder is not None
        self.store.folder.mkdir(parents=True, exist_ok=True)
        target = self.store.folder / "databases.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.catalog.to_json(), indent=2))
        os.replace(tmp, target)

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        assert self.store is not None
        db_id = self.bindings.get((worker, binding))
        if db_id is None:
            return await super().handle_call(worker, binding, method, args)
        return await self.store.acall(db_id, f"env.{binding}", method, args)

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()

    # -- outside handle (edgelet.testing) --------------------------------------------------------
    def test_handle(self, worker: str, binding: str) -> D1DatabaseHandle:
        """The D1 database bound as ``binding``: same async methods as ``env.BINDING``."""
        from edgelet.bindings.d1.handle import D1DatabaseHandle  # tests only: not imported by `dev`
        if self.store is None:
            raise RuntimeError("the D1 plug-in is not started; start the platform first")
        db_id = self.bindings.get((worker, binding))
        if db_id is None:
            known = ", ".join(f"{w}.{b}" for w, b in sorted(self.bindings)) or "none"
            raise LookupError(f"Worker {worker!r} has no D1 binding {binding!r}; D1 bindings: "
                              f"{known}. Add it under d1_databases in the Worker's config.")
        return D1DatabaseHandle(self.store, db_id, f"{worker}.env.{binding}")

    # -- names for the control API -----------------------------------------------------------------
    def resolve(self, name: str) -> DatabaseEntry:
        """A database from its id, name or binding; LookupError naming what exists."""
        assert self.store is not None
        return self.catalog.resolve(name, self.store)

    def databases(self) -> list[DatabaseEntry]:
        assert self.store is not None
        return self.catalog.all(self.store)

    def routes(self) -> list[BaseRoute]:
        from edgelet.bindings.d1.routes import routes
        return routes(self)

    def cli(self) -> click.Group | None:
        from edgelet.bindings.d1.cli import d1
        return d1
