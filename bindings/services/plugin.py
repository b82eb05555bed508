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

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        found = {}
        for decl in worker.decls(self.kind):
            self._targets[(worker.name, decl.binding)] = (decl.service, decl.entrypoint)
            found[decl.binding] = {"service": decl.service, "entrypoint": decl.entrypoint}
        return found

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        assert self.host is not None
        service, entrypoint = self._targets[(worker, binding)]
        if method == "fetch":
            if entrypoint is None:
                return await self.host.fetch(service, *args[0])  # type: ignore[attr-defined]
            return await self.host.invoke(service, "services.fetch", [entrypoint, args[0]])
        if method == "rpc":
            name, payload = args
            return await self.host.invoke(service, "rpc", [entrypoint, name, payload])
        return await super().handle_call(worker, binding, method, args)
