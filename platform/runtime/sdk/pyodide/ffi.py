"""``pyodide.ffi``: in edgelet values are already Python, so conversions are identities."""

from typing import Any


class JsProxy:  # noqa: D101 - a marker type for isinstance checks in user code
    pass


class JsException(Exception):
    """Stands for a JavaScript error raised through Pyodide."""


def to_js(value: Any, *args: Any, **kwargs: Any) -> Any:
    """Return ``value`` unchanged: edgelet's bindings take Python values directly."""
    return value


def create_proxy(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


def create_once_callable(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


__all__ = ["JsException", "JsProxy", "create_once_callable", "create_proxy", "to_js"]
