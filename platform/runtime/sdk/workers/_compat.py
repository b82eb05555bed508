"""The parts of Cloudflare's SDK that bridge Python and JavaScript, for a world without JS.

``python_to_rpc``/``python_from_rpc`` convert values crossing Workers RPC on Cloudflare; in
edgelet values are already Python, so they only turn dicts into attribute dicts as
Cloudflare's ``JsDict`` does. ``import_from_javascript`` knows ``cloudflare:workers``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator, Sequence
from http import HTTPMethod
from types import SimpleNamespace
from typing import Any, Protocol, TypeAlias, TypedDict

from edgelet.runtime.jstypes import JsObject


class Context(Protocol):
    def waitUntil(self, other: Awaitable[Any]) -> None: ...  # noqa: N802


# what a body may be (names of the JS world on Cloudflare; Python objects here)
JSBody: TypeAlias = Any
Body: TypeAlias = Any


class RequestInitCfProperties(TypedDict, total=False):
    apps: bool | None
    cacheEverything: bool | None
    cacheKey: str | None
    cacheTags: list[str] | None
    cacheTtl: int
    cacheTtlByStatus: dict[str, int]
    image: Any | None
    mirage: bool | None
    polish: str | None
    resolveOverride: str | None
    scrapeShield: bool | None
    webp: bool | None


class FetchKwargs(TypedDict, total=False):
    headers: Any
    body: Any
    method: HTTPMethod | str | None
    redirect: str | None
    cf: RequestInitCfProperties | None
    fetcher: Any


def _runtime() -> Any:
    from edgelet.runtime.isolate import Runtime
    if Runtime.current is None:
        raise RuntimeError("only available inside a running Worker")
    return Runtime.current


def wait_until(awaitable: Awaitable[Any]) -> None:
    """Keep ``awaitable`` running after the response (Cloudflare's module-level waitUntil)."""
    _runtime().new_context().wait_until(awaitable)


def python_from_rpc(obj: Any) -> Any:
    """A value received over RPC, with dicts (nested too) allowing attribute access."""
    if isinstance(obj, dict) and not isinstance(obj, JsObject):
        return JsObject({k: python_from_rpc(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [python_from_rpc(v) for v in obj]
    return obj


def python_to_rpc(value: Any) -> Any:
    """A value to send over RPC; edgelet sends Python values as they are."""
    return value


@contextlib.contextmanager
def patch_env(d: dict[str, Any] | Sequence[tuple[str, Any]] | None = None, **kwds: Any) -> Iterator[None]:
    """Within the block, ``env`` has these extra (or replaced) values."""
    values = _runtime().env._values
    new = (dict(d) if d else {}) | kwds
    missing = object()
    saved = {k: values.get(k, missing) for k in new}
    values.update(new)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is missing:
                values.pop(k, None)
            else:
                values[k] = old


def import_from_javascript(module_name: str) -> Any:
    """``cloudflare:workers`` (env, waitUntil and the entrypoint classes); other JavaScript
    modules do not exist in edgelet, which has no JavaScript."""
    if module_name == "cloudflare:workers":
        from edgelet.runtime.entrypoints import WorkerEntrypoint
        from edgelet.runtime.kinds import sdk_exports
        exports = sdk_exports()
        return SimpleNamespace(env=_runtime().env, waitUntil=wait_until, WorkerEntrypoint=WorkerEntrypoint,
                               DurableObject=exports.get("DurableObject"),
                               WorkflowEntrypoint=exports.get("WorkflowEntrypoint"))
    raise ImportError(f"Failed to import {module_name!r}: edgelet runs Python Workers without a "
                      f"JavaScript runtime; only 'cloudflare:workers' can be imported")


__all__ = ["Body", "Context", "FetchKwargs", "JSBody", "RequestInitCfProperties",
           "import_from_javascript", "patch_env", "python_from_rpc", "python_to_rpc", "wait_until"]
