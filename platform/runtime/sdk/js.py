"""The ``js`` module of Pyodide-era Python Workers (``from js import Response``)."""

import json as _json
import logging as _logging
from typing import Any

from edgelet.runtime.html_rewriter import HTMLRewriter  # noqa: F401 - js.HTMLRewriter
from edgelet.runtime.http_types import Headers, Request, Response
from edgelet.runtime.outgoing import fetch
from edgelet.runtime.websocket import WebSocketPair, WebSocketRequestResponsePair  # noqa: F401
from edgelet.runtime.websocket_outbound import OutboundWebSocket as WebSocket  # noqa: F401

_log = _logging.getLogger("worker")


class console:  # noqa: N801 - JavaScript's name
    @staticmethod
    def log(*args: Any) -> None:
        print(*args)

    info = log
    debug = log

    @staticmethod
    def warn(*args: Any) -> None:
        _log.warning(" ".join(str(a) for a in args))

    @staticmethod
    def error(*args: Any) -> None:
        _log.error(" ".join(str(a) for a in args))


class Object:
    @staticmethod
    def fromEntries(entries: Any) -> dict:  # noqa: N802
        return dict(entries)

    @staticmethod
    def values(obj: Any) -> list:
        """``Object.values(WebSocketPair.new())`` and friends."""
        if hasattr(obj, "object_values"):
            return list(obj.object_values())
        return list(obj.values()) if hasattr(obj, "values") else list(vars(obj).values())


class JSON:
    @staticmethod
    def stringify(value: Any) -> str:
        return _json.dumps(value)

    @staticmethod
    def parse(text: str) -> Any:
        return _json.loads(text)


class Date:
    @staticmethod
    def now() -> int:
        import time
        return int(time.time() * 1000)


__all__ = ["Date", "HTMLRewriter", "Headers", "JSON", "Object", "Request", "Response", "WebSocket", "WebSocketPair",
           "WebSocketRequestResponsePair", "console", "fetch"]
