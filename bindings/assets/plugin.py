"""Static assets: files served before the Worker runs, or through ``env.ASSETS.fetch``."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.assets.config import Assets
from edgelet.bindings.assets.files import content_type, not_found_file, resolve


class Plugin(BindingPlugin):
    kind = "assets"

    def __init__(self) -> None:
        super().__init__()
        self._assets: dict[str, Assets] = {}

    def configure(self, config: Any) -> None:
        self._assets = {w.name: w.decls(self.kind)[0] for w in config.workers if w.decls(self.kind)}

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        decls = worker.decls(self.kind)
        return {decls[0].binding: {}} if decls and decls[0].binding else {}

    async def intercept(self, worker: str, request: list[Any]) -> list[Any] | None:
        assets = self._assets.get(worker)
        if assets is None or assets.run_worker_first or request[0] not in ("GET", "HEAD"):
            return None
        return self.serve(assets, request, fallback=False)

    def serve(self, assets: Assets, request: list[Any], *, fallback: bool) -> list[Any] | None:
        """The response for a request, or None to let the Worker answer."""
        method, url = request[0], request[1]
        path, redirect = resolve(assets, url)
        if redirect is not None:
            return [307, [["location", redirect]], b""]
        status = 200
        if path is None:
            path, status = not_found_file(assets)
            if path is None:
                if not fallback:
                    return None
                return [404, [["content-type", "text/plain;charset=UTF-8"]], b"Not Found"]
        body = path.read_bytes()
        stat = path.stat()
        headers = [["content-type", content_type(path)],
                   ["etag", f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'],
                   ["last-modified", formatdate(stat.st_mtime, usegmt=True)],
                   ["cache-control", "public, max-age=0, must-revalidate"]]
        return [status, headers, b"" if method == "HEAD" else body]

    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        if method == "fetch":
            return self.serve(self._assets[worker], args[0], fallback=True)
        return await super().handle_call(worker, binding, method, args)
