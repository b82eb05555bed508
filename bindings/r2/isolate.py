"""Worker side of R2: ``env.BUCKET`` forwards each call to the host over the isolate channel.

All argument shaping is shared with the host-side test handle (``binding.R2BucketAPI``);
this class only says how a call travels.
"""

from __future__ import annotations

from typing import Any

from edgelet.bindings.r2.binding import R2BucketAPI, R2MultipartUpload, R2Object, R2ObjectBody, R2Stream

__all__ = ["R2Bucket", "R2MultipartUpload", "R2Object", "R2ObjectBody", "R2Stream", "make_binding"]


class R2Bucket(R2BucketAPI):
    """``env.<binding>`` of an ``r2_buckets`` entry."""

    def __init__(self, name: str, options: dict[str, Any], runtime: Any) -> None:
        super().__init__(f"env.{name}")
        self._name = name
        self._bucket = options.get("bucket", name)
        self._runtime = runtime

    async def _call(self, method: str, *args: Any) -> Any:
        return await self._runtime.call("r2", self._name, method, *args)

    def __repr__(self) -> str:
        return f"<R2 bucket env.{self._name} ({self._bucket!r})>"


def make_binding(name: str, options: dict[str, Any], runtime: Any) -> R2Bucket:
    return R2Bucket(name, options, runtime)
