"""The outside handle: an R2 bucket reached from the host process (tests, seeding).

``Plugin.test_handle(worker, binding)`` returns one. It has the same async methods, names and
result shapes as ``env.BUCKET`` inside a Worker, but calls the service directly: no isolate,
no channel.
"""

from __future__ import annotations

from typing import Any

from edgelet.bindings.r2.binding import R2BucketAPI
from edgelet.bindings.r2.service import R2Service


class R2BucketHandle(R2BucketAPI):
    """An R2 bucket as a Worker sees it, from outside the Worker."""

    def __init__(self, service: R2Service, bucket: str, label: str) -> None:
        super().__init__(label)
        self.service = service
        #: the bucket name (shared by every Worker that binds it)
        self.bucket = bucket

    async def _call(self, method: str, *args: Any) -> Any:
        return await self.service.call(self.bucket, self._label, method, list(args))

    def __repr__(self) -> str:
        return f"<R2 bucket {self._label} ({self.bucket!r}), host handle>"
