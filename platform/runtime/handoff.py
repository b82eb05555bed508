"""The isolate half of the handoff socket (see edgelet.handoff for the message format).

The host hands this isolate connections (an HTTP connection of its Worker, a WebSocket)
over a SOCK_SEQPACKET socket whose descriptor it names in ``EDGELET_HANDOFF_FD``; the
isolate hands back the ones it cannot serve. A feature registers a callback for its kind:

    from edgelet.runtime import handoff
    handoff.register("http", callback)      # callback(conn: socket.socket, data: bytes, meta: dict)
    handoff.send("http", conn, data, meta)  # back to the host; raises HandoffError if it is gone
    handoff.endpoint()                      # the Endpoint, or None (no handoff socket)

Callbacks may be registered before or after the socket is started (``start``, called by
edgelet.runtime.isolate when the isolate begins serving).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from edgelet.handoff import ENV_FD, Callback, Endpoint, HandoffError

#: kind -> callback, shared with the Endpoint (so registering later works)
_handlers: dict[str, Callback] = {}
_endpoint: Endpoint | None = None


def register(kind: str, callback: Callback) -> None:
    """Call ``callback(conn, data, meta)`` for every connection of ``kind`` the host hands over."""
    _handlers[kind] = callback


def endpoint() -> Endpoint | None:
    """This isolate's end of the handoff socket (None when the host gave it none)."""
    return _endpoint


def send(kind: str, conn: socket.socket | int, data: bytes = b"", meta: dict[str, Any] | None = None) -> None:
    """Hand ``conn`` back to the host (it gets a duplicate; close ours when done)."""
    if _endpoint is None:
        raise HandoffError("this isolate has no handoff socket")
    _endpoint.send(kind, conn, data, meta)


def start() -> Endpoint | None:
    """Serve the socket named by EDGELET_HANDOFF_FD in the running loop (once)."""
    global _endpoint
    if _endpoint is not None:
        return _endpoint
    raw = os.environ.pop(ENV_FD, None)  # not inherited by programs the Worker runs
    if not raw:
        return None
    try:
        sock = socket.socket(fileno=int(raw))
    except (ValueError, OSError):
        return None
    os.set_inheritable(sock.fileno(), False)
    _endpoint = Endpoint(sock, _handlers)
    _endpoint.start()
    return _endpoint


__all__ = ["HandoffError", "endpoint", "register", "send", "start"]
