"""Host side of service bindings: a call to ``env.SVC`` becomes an event in the target
Worker's isolate. Nothing leaves the machine and no HTTP round trip is made."""

from __future__ import annotations

from typing import Any

from edgelet.bindings import BindingPlugin


class Plugin(BindingPlugin):
    kind = "services"

    def __init__(self) -> None:
        super().__init__()
        self._targets: dict[tuple[str, str], tuple[str, str | None]] = {}

    def configure(self, config: Any) -> None:
        self._targets = {(w.name, d.binding): (d.service, d.entrypoint)
                         for w in config.workers for d in w.decls(self.kind)}

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        return {d.binding: {"service": d.service, "entrypoint": d.entrypoint}
                for d in worker.decls(self.kind)}

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        assert self.host is not None
        service, entrypoint = self._targets[(worker, binding)]
        if method == "fetch":
            if entrypoint is None:
                return await self.host.fetch(service, *args[0])
            return await self.host.invoke(service, "services.fetch", [entrypoint, args[0]])
        if method == "rpc":
            name, payload = args
            return await self.host.invoke(service, "rpc", [entrypoint, name, payload])
        return await super().handle_call(worker, binding, method, args)
