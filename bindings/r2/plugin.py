"""Host side of R2: owns the storage, answers Workers' calls, the control API and the CLI."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.r2 import errors
from edgelet.bindings.r2.service import R2Service
from edgelet.bindings.r2.storage import R2Storage

if TYPE_CHECKING:  # pragma: no cover
    import click
    from starlette.routing import BaseRoute

    from edgelet.bindings.r2.handle import R2BucketHandle
    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.r2")

#: the SQLite database (``<state>/r2.sqlite3``) of every bucket's metadata
DATABASE = "r2"
#: the folder under the state folder that holds bodies (``<state>/r2/<bucket>/...``)
FOLDER = "r2"


class Plugin(BindingPlugin):
    kind = "r2"
    test_accessor = "r2"

    def __init__(self) -> None:
        super().__init__()
        self.storage: R2Storage | None = None
        self.service: R2Service | None = None
        #: (worker, binding) -> bucket name
        self.bindings: dict[tuple[str, str], str] = {}
        #: with --in-memory, bodies live in a temp folder removed at stop
        self._temp: str | None = None

    def configure(self, config: PlatformConfig) -> None:
        self.bindings = {(w.name, d.binding): d.bucket_name for w in config.workers for d in w.decls(self.kind)}

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        return {d.binding: {"bucket": d.bucket_name} for d in worker.decls(self.kind)}

    async def start(self, host: HostServices) -> None:
        await super().start(host)
        if host.state_dir is None:
            self._temp = tempfile.mkdtemp(prefix="edgelet-r2-")
            root = Path(self._temp)
        else:
            root = host.state_dir / FOLDER
        if not self.bindings and host.state_dir is not None and not (host.state_dir / f"{DATABASE}.sqlite3").exists():
            return  # no bucket configured and none stored: no file created
        self.storage = R2Storage(host.database(DATABASE), root, host.clock)
        removed = self.storage.cleanup()
        if any(removed.values()):
            log.info("R2: removed what an interrupted run left behind: %d temp files, %d unreferenced bodies, "
                     "%d abandoned part files", removed["temp"], removed["blobs"], removed["parts"])
        self.storage.record_bindings((w, b, bucket) for (w, b), bucket in self.bindings.items())
        self.service = R2Service(self.storage)

    async def stop(self) -> None:
        if self.service is not None:
            self.service.close()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def _service(self) -> R2Service:
        if self.service is None:
            raise RuntimeError("the R2 plug-in is not started (no r2_buckets in the config); add r2_buckets "
                               "to the Worker's config and start the platform")
        return self.service

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        bucket = self.bindings.get((worker, binding))
        if bucket is None:
            return await super().handle_call(worker, binding, method, args)
        try:
            return await self._service().call(bucket, f"env.{binding}", method, args)
        except errors.NoSuchUpload as exc:
            raise ValueError(str(exc)) from None  # the types the channel rebuilds in the Worker
        except errors.R2Error as exc:
            raise ValueError(str(exc)) from None

    # -- outside handle (edgelet.testing) --------------------------------------------------------
    def test_handle(self, worker: str, binding: str) -> R2BucketHandle:
        """The R2 bucket bound as ``binding``: same async methods as ``env.BINDING``."""
        from edgelet.bindings.r2.handle import R2BucketHandle  # tests only: not imported by `dev`
        bucket = self.bindings.get((worker, binding))
        if bucket is None:
            known = ", ".join(f"{w}.{b}" for w, b in sorted(self.bindings)) or "none"
            raise LookupError(f"Worker {worker!r} has no R2 binding {binding!r}; R2 bindings: {known}. "
                              f"Add it under r2_buckets in the Worker's config.")
        return R2BucketHandle(self._service(), bucket, f"{worker}.env.{binding}")

    # -- names for the control API and CLI ---------------------------------------------------------
    def resolve(self, name: str) -> str:
        """A bucket name from a bucket name or a binding name; LookupError naming what exists."""
        names = set(self.bindings.values())
        if name in names:
            return name
        for (_, b), bucket in self.bindings.items():
            if b == name:
                return bucket
        if self.storage is not None and name in self.storage.buckets():
            return name
        known = ", ".join(sorted(names | {b for _, b in self.bindings})) or "none configured"
        raise LookupError(f"no R2 bucket or binding named {name!r}; known: {known}")

    def buckets(self) -> list[dict[str, Any]]:
        """Every configured or stored bucket with the bindings that reach it and its usage."""
        usage = self.storage.usage() if self.storage is not None else {}
        stored = self.storage.buckets() if self.storage is not None else []
        out: dict[str, dict[str, Any]] = {}
        for (worker, binding), bucket in sorted(self.bindings.items()):
            out.setdefault(bucket, {"name": bucket, "bindings": []})["bindings"].append(
                {"worker": worker, "binding": binding})
        for bucket in stored:
            out.setdefault(bucket, {"name": bucket, "bindings": []})
        for bucket, entry in out.items():
            entry["object_count"], entry["size"] = usage.get(bucket, (0, 0))
        return [out[b] for b in sorted(out)]

    def routes(self) -> list[BaseRoute]:
        from edgelet.bindings.r2.routes import routes
        return routes(self)

    def cli(self) -> click.Group | None:
        from edgelet.bindings.r2.cli import r2
        return r2
