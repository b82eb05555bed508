"""The ``workers`` module of Cloudflare's Python Workers, as edgelet provides it.

Only importable inside an isolate (the isolate puts this folder on ``sys.path``), so a
script written for Cloudflare runs unchanged and nothing named ``workers`` is installed
into site-packages.
"""

from edgelet.runtime.entrypoints import Env, ExecutionContext, ScheduledController, WorkerEntrypoint
from edgelet.runtime.html_rewriter import HTMLRewriter  # noqa: F401 - Cloudflare's name
from edgelet.runtime.http_types import Headers, Request, Response
from edgelet.runtime.kinds import sdk_exports
from edgelet.runtime.outgoing import fetch
from edgelet.runtime.websocket import WebSocketPair, WebSocketRequestResponsePair  # noqa: F401
from edgelet.runtime.websocket_outbound import OutboundWebSocket as WebSocket  # noqa: F401

# what binding kinds add (DurableObject, WorkflowEntrypoint, ...): see edgelet.runtime.kinds
globals().update(sdk_exports())


def handler(fn):
    """Accepted for Pyodide-era scripts that decorate ``on_fetch``; it changes nothing."""
    return fn


__all__ = [
    "Env", "ExecutionContext", "HTMLRewriter", "Headers", "Request", "Response",
    "ScheduledController", "WorkerEntrypoint", "fetch", "handler", *sdk_exports(),
    "WebSocket", "WebSocketPair", "WebSocketRequestResponsePair",
]
