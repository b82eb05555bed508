"""Host side of Worker Loader: one isolate per (Worker, id), started on first use and kept.

The code a Worker's callback returns is written to a private folder and started through
the host like any isolate (fork server, limits of the loading Worker, logs in ``tail``).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.worker_loaders.code import check_code, write_modules


class Plugin(BindingPlugin):
    kind = "worker_loaders"

    def __init__(self) -> None:
        super().__init__()
        #: (worker, id) -> the running isolate
        self.loaded: dict[tuple[str, str], Any] = {}
        self._starting: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._folder: Path | None = None

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        return {d.binding: {} for d in worker.decls(self.kind)}

    async def stop(self) -> None:
        for isolate in self.loaded.values():
            assert self.host is not None
            await self.host.stop_isolate(isolate)
        self.loaded.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        if method == "has":
            return (worker, args[0]) in self.loaded
        if method == "load":
            await self._load(worker, binding, args[0], args[1])
            return None
        if method in ("fetch", "rpc"):
            worker_id, entrypoint = args[0], args[1]
            isolate = self.loaded.get((worker, worker_id))
            if isolate is None:
                raise LookupError(f"env.{binding}: no Worker loaded with id {worker_id!r}; call "
                                  f"env.{binding}.get(id, callback) first")
            if method == "fetch":
                if entrypoint is None:
                    return await isolate.invoke("fetch", args[2])
                return await isolate.invoke("services.fetch", [entrypoint, args[2]])
            return await isolate.invoke("rpc", [entrypoint, args[2], args[3]])
        return await super().handle_call(worker, binding, method, args)

    async def _load(self, worker: str, binding: str, worker_id: str, raw: Any) -> None:
        key = (worker, worker_id)
        if key in self.loaded:
            return
        pending = self._starting.get(key)
        if pending is not None:  # two requests raced to load one id: start it once
            await asyncio.shield(pending)
            return
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            code = check_code(worker_id, raw)
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="edgelet-loaded-"))
            digest = hashlib.sha256(f"{worker}\0{worker_id}".encode()).hexdigest()[:16]
            folder = self._folder / digest
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_modules(folder, code["modules"])
            assert self.host is not None
            name = f"{worker}/{binding}:{worker_id}"
            isolate = await self.host.start_isolate(
                name, folder / code["mainModule"], like=worker, env=code["env"])
            if not isolate.info.get("handlers") and not isolate.info.get("entrypoints"):
                await self.host.stop_isolate(isolate)
                raise ValueError(f"Worker Loader code for id {worker_id!r}: {code['mainModule']} defines no "
                                 f"handler; add `class Default(WorkerEntrypoint)` with `async def fetch`")
            self.loaded[key] = isolate
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone loader must not log "never retrieved"
            raise
        finally:
            self._starting.pop(key, None)
