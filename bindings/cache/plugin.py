"""Host half of the Cache API (``caches.default``, ``await caches.open(name)``).

Why a plug-in although no config declares it: it has what a binding kind has (a store in
the state folder, in memory with ``--in-memory``, timed by the platform clock so virtual
time expires entries), and the contract already carries a Worker half that calls its own
host half without an ``env`` entry (``isolate_options`` + ``runtime.call_host``). Every
Python Worker gets it; ``ALWAYS_ON`` in edgelet.bindings keeps it from being deferred.
One cache per platform, shared by its Workers (Cloudflare's is per data centre and zone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.cache import policy
from edgelet.bindings.cache.schema import DATABASE
from edgelet.bindings.cache.storage import CacheStorage, Entry

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import WorkerConfig
    from edgelet.host_api import HostServices


class Plugin(BindingPlugin):
    kind = "cache"

    def __init__(self) -> None:
        super().__init__()
        self._storage: CacheStorage | None = None

    def isolate_options(self, worker: WorkerConfig) -> dict[str, Any] | None:
        return None if worker.is_wasm else {}

    async def start(self, host: HostServices) -> None:
        self.host = host

    @property
    def storage(self) -> CacheStorage:
        """Opened at the first cache call, so a platform that never caches opens no file."""
        if self._storage is None:
            assert self.host is not None, "the cache plug-in was called before start()"
            self._storage = CacheStorage(self.host.database(DATABASE))
        return self._storage

    def _now(self) -> float:
        assert self.host is not None
        return self.host.clock.now()

    async def handle_isolate_call(self, worker: str, method: str, args: list[Any]) -> Any:
        if method == "put":
            cache, url, req_method, status, headers, body = args
            refusal = policy.put_refusal(req_method, status, headers)
            if refusal:
                raise TypeError(refusal)
            now = self._now()
            decision = policy.decide(status, headers, now)
            if decision.ttl is None:
                return decision.reason  # not stored, as on Cloudflare: put() still resolves
            self.storage.put(cache, url, Entry(status, decision.headers, body, now + decision.ttl))
            return None
        if method == "match":
            cache, url, request_headers = args
            entry = self.storage.get(cache, url, self._now())
            if entry is None:
                return None
            return list(policy.match_answer(entry.status, entry.headers, entry.body, request_headers))
        if method == "delete":
            cache, url = args
            return self.storage.delete(cache, url, self._now())
        return await super().handle_isolate_call(worker, method, args)
