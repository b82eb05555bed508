"""The ``workers`` module of Cloudflare's Python Workers, as edgelet provides it.

Only importable inside an isolate (the isolate puts this folder on ``sys.path``), so a
script written for Cloudflare runs unchanged and nothing named ``workers`` is installed
into site-packages. Every public name of Cloudflare's ``workers-runtime-sdk`` is here with a
compatible signature (tests/platform/test_sdk_surface.py checks it against the published SDK).
"""

from typing import Any

from edgelet.runtime.entrypoints import Env, ExecutionContext, ScheduledController, WorkerEntrypoint
from edgelet.runtime.formdata import Blob, BlobEnding, BlobValue, File, FormData, FormDataValue
from edgelet.runtime.http_types import Headers, Request, Response
from edgelet.runtime.kinds import sdk_exports
from edgelet.runtime.outgoing import fetch
from edgelet.runtime.websocket import WebSocketPair, WebSocketRequestResponsePair  # noqa: F401
from edgelet.runtime.websocket_outbound import OutboundWebSocket as WebSocket  # noqa: F401
from workers._compat import (
    Body,
    Context,
    FetchKwargs,
    JSBody,
    RequestInitCfProperties,
    import_from_javascript,
    patch_env,
    python_from_rpc,
    python_to_rpc,
    wait_until,
)

# what binding kinds add (DurableObject, WorkflowEntrypoint, ...): see edgelet.runtime.kinds
globals().update(sdk_exports())

#: Cloudflare's SDK names the Response of fetch() so; here both are one class
FetchResponse = Response
waitUntil = wait_until  # noqa: N816 - Cloudflare's name


def handler(func: Any) -> Any:
    """Accepted for Pyodide-era scripts that decorate ``on_fetch``; it changes nothing."""
    return func


def __getattr__(name: str) -> Any:
    """``from workers import env``: the Worker's env, as Cloudflare's SDK offers it; and
    ``HTMLRewriter``, imported on first use (its CSS selector engine is a tenth of what
    the fork server imports for every isolate, and few Workers rewrite HTML)."""
    if name == "HTMLRewriter":
        from edgelet.runtime.html_rewriter import HTMLRewriter
        globals()["HTMLRewriter"] = HTMLRewriter
        return HTMLRewriter
    if name == "env":
        from edgelet.runtime.isolate import Runtime
        if Runtime.current is None:
            raise AttributeError("workers.env is only available inside a running Worker")
        return Runtime.current.env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Blob", "BlobEnding", "BlobValue", "Body", "Context", "Env", "ExecutionContext",
    "FetchKwargs", "FetchResponse", "File", "FormData", "FormDataValue", "HTMLRewriter", "Headers", "JSBody",
    "Request", "RequestInitCfProperties", "Response", "ScheduledController", "WorkerEntrypoint",
    "env", "fetch", "handler", "import_from_javascript", "patch_env", "python_from_rpc",
    "python_to_rpc", "waitUntil", "wait_until", *sdk_exports(),
    "WebSocket", "WebSocketPair", "WebSocketRequestResponsePair",
]
