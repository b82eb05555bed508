"""What a Python Worker may send over Workers RPC (a service binding's methods), checked as
Cloudflare's SDK checks it.

Why: edgelet carries RPC values with cloudpickle, which takes any Python object, while on
Cloudflare ``workers.python_to_rpc`` converts them to JavaScript (``to_js``) and workerd
structured-clones the result. A tuple or a ``bytearray`` is refused there with ``TypeError:
<class 'tuple'> cannot be sent over RPC.`` (src/workers/_rpc.py of cloudflare/workers-py), an
awaitable likewise, and an instance of one's own class has no JavaScript form at all, so a
call that worked locally failed once deployed. Functions are allowed (Cloudflare passes them
as RPC stubs).
"""

from __future__ import annotations

import datetime
import inspect
from typing import Any

#: plain values that convert to JavaScript as they are
_LEAVES = (str, int, float, bytes, memoryview, datetime.datetime, BaseException)


def _allowed_object(value: Any) -> bool:
    """Platform objects with a JavaScript form (Request, Response, Headers, FormData, Blob,
    bindings, JsObject): edgelet's own classes, which the SDK converts with ``js_object``."""
    module = type(value).__module__ or ""
    return module.startswith(("edgelet.", "workers", "js", "pyodide")) or hasattr(value, "js_object")


def check_rpc_value(value: Any, where: str, path: str = "") -> None:
    """Raise TypeError, naming ``where`` and the position inside the value, for what
    Cloudflare's RPC cannot send."""
    if value is None or isinstance(value, _LEAVES):
        return
    shown = f"{where}{path}"
    if isinstance(value, (tuple, bytearray)):
        fix = "a list" if isinstance(value, tuple) else "bytes"
        raise TypeError(f"{type(value)} cannot be sent over RPC. ({shown}: send {fix} instead; Cloudflare's "
                        f"Python SDK refuses it)")
    if inspect.isawaitable(value):
        raise TypeError(f"Awaitable {type(value)} cannot be sent over RPC. ({shown}: await it first and send "
                        f"the result)")
    if isinstance(value, dict):
        for key, item in value.items():
            check_rpc_value(item, where, f"{path}[{key!r}]")
        return
    if isinstance(value, (list, set, frozenset)):
        for i, item in enumerate(value):
            check_rpc_value(item, where, f"{path}[{i}]" if isinstance(value, list) else f"{path} (a member)")
        return
    if callable(value) or isinstance(value, type) or _allowed_object(value):
        return  # a function becomes an RPC stub on Cloudflare
    raise TypeError(f"{type(value).__module__}.{type(value).__qualname__} cannot be sent over RPC. ({shown}: "
                    f"Cloudflare converts RPC values to JavaScript, and an instance of your own class has no "
                    f"JavaScript form; send a dict of its fields, e.g. dataclasses.asdict(value) or vars(value))")
