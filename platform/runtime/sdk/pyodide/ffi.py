"""``pyodide.ffi``: in edgelet values are already Python, so most conversions are identities.

``to_js(bytes)`` gives a ``Uint8Array`` (bytes with ``.buffer``) and ``to_js(dict)`` an
object with attribute access, as scripts written for Pyodide expect.
"""

import asyncio
import concurrent.futures
from typing import Any

from edgelet.runtime.jstypes import ArrayBuffer, JsObject, Uint8Array


class JsProxy:  # noqa: D101 - a marker type for isinstance checks in user code
    pass


class JsBuffer(JsProxy):
    pass


class JsException(Exception):
    """Stands for a JavaScript error raised through Pyodide."""


# More of Pyodide's proxy types, for ``isinstance`` checks in scripts: in edgelet values are
# Python objects, so (as for results the SDK already converted on Cloudflare) none is one.
class JsArray(JsProxy):
    pass


class JsMap(JsProxy):
    pass


class JsMutableMap(JsMap):
    pass


class JsPromise(JsProxy):
    pass


class JsCallable(JsProxy):
    pass


class JsIterable(JsProxy):
    pass


class JsTypedArray(JsBuffer):
    pass


class ConversionError(Exception):
    """Pyodide raises it for a value it cannot convert; edgelet converts nothing."""


#: not in a browser: scripts branch on it to pick Workers' code paths
IN_BROWSER = False

jsnull = None


def can_run_sync() -> bool:
    """Whether ``run_sync`` may be called here: inside a Worker's handler it can (see
    ``run_sync``); elsewhere it runs the awaitable on a loop of its own."""
    return True


def to_js(value: Any, *args: Any, dict_converter: Any = None, **kwargs: Any) -> Any:
    """bytes -> Uint8Array; dict -> ``dict_converter(items)`` or an attribute dict."""
    if isinstance(value, (bytes, bytearray, memoryview)) and not isinstance(value, (Uint8Array, ArrayBuffer)):
        return Uint8Array(bytes(value))
    if isinstance(value, dict):
        if dict_converter is not None:
            return dict_converter(value.items())
        return JsObject(value)
    return value


def create_proxy(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


def create_once_callable(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


def destroy_proxies(proxies: Any) -> None:
    return None


def _run_sync(awaitable: Any) -> Any:
    """Run ``awaitable`` to completion from synchronous code, as Pyodide's JSPI does.

    Inside a Worker's handler (sync code it calls, however deep) the handler is suspended
    while the Worker's own loop awaits ``awaitable``, so bindings work:
    ``run_sync(env.KV.get("k"))`` (see edgelet.runtime.sync_bridge). Outside an event loop
    it simply runs. Elsewhere on the loop (a task the handler spawned) it runs on a helper
    thread with its own loop: fine for self-contained work, not for bindings.
    """
    from edgelet.runtime import sync_bridge
    if sync_bridge.inside_handler():
        return sync_bridge.wait(awaitable)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(awaitable))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _as_coroutine(awaitable)).result()


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def __getattr__(name: str) -> Any:
    """``run_sync`` is handed out here so that reaching it (``from pyodide.ffi import
    run_sync``) turns on the handler greenlets it needs (edgelet.runtime.sync_bridge): a
    Worker that never uses it pays nothing per request."""
    if name == "run_sync":
        from edgelet.runtime import entrypoints
        entrypoints.run_sync_wanted = True
        return _run_sync
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["IN_BROWSER", "ConversionError", "JsArray", "JsBuffer", "JsCallable", "JsException", "JsIterable",
           "JsMap", "JsMutableMap", "JsPromise", "JsProxy", "JsTypedArray", "can_run_sync", "create_once_callable",
           "create_proxy", "destroy_proxies", "jsnull", "run_sync", "to_js"]  # noqa: F822 - run_sync: __getattr__
