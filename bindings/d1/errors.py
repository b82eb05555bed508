"""``D1Error``: what a failed D1 call raises, on both sides of the isolate channel.

Cloudflare raises a JavaScript ``Error`` whose message starts with ``D1_ERROR:`` (Python
Workers see it as ``pyodide.ffi.JsException``). Inside an isolate ``D1Error`` subclasses
edgelet's ``JsException`` so ``except JsException`` written for Cloudflare still catches it;
on the host (no ``pyodide`` module) it is a plain ``Exception``.
"""

from __future__ import annotations

try:  # inside an isolate the SDK folder is on sys.path
    from pyodide.ffi import JsException as _Base
except ImportError:  # the host process
    _Base = Exception

#: the exception's type name on the wire (``RemoteError.type_name``)
WIRE_NAME = "D1Error"


class D1Error(_Base):
    """A D1 query failed; ``str(err)`` starts with ``D1_ERROR:`` and carries SQLite's message."""

    @property
    def message(self) -> str:
        return str(self)

