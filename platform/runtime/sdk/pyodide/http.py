"""``pyodide.http.pyfetch``: outgoing HTTP returning a response with Pyodide's readers."""

from typing import Any

from edgelet.runtime.http_types import Response
from edgelet.runtime.outgoing import fetch

FetchResponse = Response


async def pyfetch(url: Any, **kwargs: Any) -> Response:
    """``await pyfetch(url, method=..., headers=..., body=...)``; ``await resp.json()``,
    ``.text()``, ``.bytes()``, ``.string()``, ``resp.status``, ``resp.ok``."""
    kwargs.pop("fetcher", None)
    return await fetch(url, **kwargs)


__all__ = ["FetchResponse", "pyfetch"]
