"""Worker side of Workers AI: ``await env.AI.run(model, inputs, options=None)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices


class Result(dict):
    """A result dict whose fields are attributes too (``response.output``), as in Cloudflare."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"Workers AI result has no field {name!r}; fields: "
                                 f"{', '.join(map(str, self))}") from None

    def to_py(self) -> dict[str, Any]:
        return self


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Result({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _data(value: Any) -> Any:
    """Inputs as wire data (a JsProxy-like object with ``to_py`` is converted first)."""
    if hasattr(value, "to_py") and callable(value.to_py):
        value = value.to_py()
    return value


class AI:
    """``env.AI``."""

    def __init__(self, name: str, runtime: IsolateServices) -> None:
        self._name = name
        self._runtime = runtime

    async def run(self, model: str, inputs: Any = None, options: Any = None, **kwargs: Any) -> Any:
        opts = {**(_data(options) or {}), **kwargs}
        result = await self._runtime.call("ai", self._name, "run", model, _data(inputs) or {}, opts or None)
        return _wrap(result)

    def __repr__(self) -> str:
        return f"<Workers AI binding {self._name}>"


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> AI:
    return AI(name, runtime)
