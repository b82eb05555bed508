"""Base classes a Worker script subclasses, and the objects handed to handlers.

Shapes follow Cloudflare's Python Workers: ``class Default(WorkerEntrypoint)`` with
``self.env`` and ``self.ctx``. The base classes of binding kinds (``DurableObject``,
``WorkflowEntrypoint``) live in their packages and take ``(ctx, env)`` too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any

log = logging.getLogger("edgelet.worker")


class Env:
    """``env`` of a Worker: vars, secrets and bindings by attribute or by key."""

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"env has no binding or variable {name!r}; declared: "
                f"{', '.join(sorted(self._values)) or 'none'}. Add it to the Worker's config "
                f"(vars, .dev.vars or a binding table).") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def keys(self) -> list[str]:
        return list(self._values)

    def __dir__(self) -> list[str]:
        return list(self._values)

    def __repr__(self) -> str:
        return f"<Env {sorted(self._values)}>"


class ExecutionContext:
    """``ctx`` of a handler: ``wait_until`` keeps work alive after the response."""

    def __init__(self, tasks: set[asyncio.Task[Any]] | None = None) -> None:
        self._tasks = tasks if tasks is not None else set()
        self.props: dict[str, Any] = {}

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("ctx.wait_until task failed", exc_info=t.exception())

        task.add_done_callback(done)

    waitUntil = wait_until  # noqa: N815 - Cloudflare's name

    def pass_through_on_exception(self) -> None:
        """Accepted for compatibility; there is no origin to fall back to locally."""

    passThroughOnException = pass_through_on_exception  # noqa: N815


class WorkerEntrypoint:
    """Subclass as ``class Default(WorkerEntrypoint)``; other subclasses are named entrypoints."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env


class ScheduledController:
    """The ``controller`` of a ``scheduled`` handler (also passed as ``event``)."""

    type = "scheduled"

    def __init__(self, cron: str, scheduled_time_ms: int) -> None:
        self.cron = cron
        self.scheduledTime = scheduled_time_ms  # noqa: N815
        self.scheduled_time = scheduled_time_ms
        self.retry = False

    def noRetry(self) -> None:  # noqa: N802
        self.retry = False

    no_retry = noRetry


_ARITY: dict[Any, int] = {}


#: set once the Worker reaches ``pyodide.ffi.run_sync``: from then on handlers run in a
#: greenlet that run_sync can suspend (edgelet.runtime.sync_bridge); until then they pay nothing
run_sync_wanted = False


async def call_handler(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with as many of ``args`` as its signature accepts.

    Cloudflare documents ``fetch(self, request, env, ctx)`` but ``fetch(self, request)``
    and ``fetch(self)`` are valid too; the arity is cached per function.
    """
    arity = arity_of(fn, len(args))
    if run_sync_wanted:  # run_sync may wait for bindings (edgelet.runtime.sync_bridge)
        from edgelet.runtime.sync_bridge import Driven
        return await Driven(_call(fn, args[:arity]))
    result = fn(*args[:arity])
    # a coroutine (an `async def` handler) is by far the common case: checked by type
    # first, since inspect.isawaitable goes through the ABC machinery on every call
    if type(result) is CoroutineType or inspect.isawaitable(result):
        result = await result
    return result


def arity_of(fn: Callable[..., Any], most: int) -> int:
    """How many of ``most`` positional arguments ``fn`` takes (cached per function)."""
    key = getattr(fn, "__func__", fn)
    arity = _ARITY.get(key)
    if arity is None:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return most
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return most
        arity = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        _ARITY[key] = arity
    return arity


async def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
