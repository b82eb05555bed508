"""The ``workers`` module of Cloudflare's Python Workers, as edgelet provides it.

Only importable inside an isolate (the isolate puts this folder on ``sys.path``), so a
script written for Cloudflare runs unchanged and nothing named ``workers`` is installed
into site-packages.
"""

from edgelet.runtime.entrypoints import (
    DurableObject,
    Env,
    ExecutionContext,
    ScheduledController,
    WorkerEntrypoint,
    WorkflowEntrypoint,
)
from edgelet.runtime.http_types import Headers, Request, Response
from edgelet.runtime.outgoing import fetch


def handler(fn):
    """Accepted for Pyodide-era scripts that decorate ``on_fetch``; it changes nothing."""
    return fn


__all__ = [
    "DurableObject", "Env", "ExecutionContext", "Headers", "Request", "Response",
    "ScheduledController", "WorkerEntrypoint", "WorkflowEntrypoint", "fetch", "handler",
]
