"""``pyodide.ffi.run_sync`` that can wait for bindings: a handler runs in a greenlet.

Why: on Cloudflare, ``run_sync(env.KV.get("k"))`` in synchronous code suspends the whole
Python stack (JSPI) while the event loop goes on answering the binding. In edgelet a
binding call is answered by the isolate's own event loop (the channel's reader), which a
blocking wait on the loop thread would starve: a helper thread with another loop cannot
use the channel, and the loop cannot turn while sync code waits. So a handler's coroutine
is driven from a greenlet: ``run_sync`` switches out of it to the driver (the Task's own
step, on the loop), which awaits the awaitable there and switches back with its result.

Only Workers that reach ``run_sync`` (``from pyodide.ffi import run_sync``; the module hands
the name out through ``__getattr__`` and sets edgelet.runtime.entrypoints.run_sync_wanted)
are driven this way, so other Workers pay nothing per request; the cost for the others is a
greenlet switch per suspension of the handler.
"""

from __future__ import annotations

import contextvars
from collections.abc import Generator
from typing import Any

import greenlet


class HandlerGreenlet(greenlet.greenlet):
    """A greenlet running a Worker's handler: ``run_sync`` inside it waits on the loop."""


def inside_handler() -> bool:
    return isinstance(greenlet.getcurrent(), HandlerGreenlet)


def wait(awaitable: Any) -> Any:
    """From sync code inside a driven handler: the result of ``awaitable``, awaited on the
    Worker's loop while this stack is suspended."""
    current = greenlet.getcurrent()
    assert isinstance(current, HandlerGreenlet) and current.parent is not None
    kind, value = current.parent.switch(("await", awaitable))
    if kind == "err":
        raise value
    return value


def _task_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
    """Tasks a driven handler starts (``asyncio.gather``, ``create_task``) are driven too, so
    ``run_sync`` works in them as in the handler itself."""
    import asyncio
    if inside_handler():
        coro = _drive(coro)
    return asyncio.Task(coro, loop=loop, **kwargs)


async def _drive(coro: Any) -> Any:
    return await Driven(coro)


def install_task_factory() -> None:
    """Drive the tasks started from handlers (see _task_factory); once per loop."""
    import asyncio
    loop = asyncio.get_running_loop()
    if loop.get_task_factory() is None:
        loop.set_task_factory(_task_factory)


class Driven:
    """``await Driven(coro)`` runs ``coro`` inside a :class:`HandlerGreenlet`, with the same
    result, exceptions and cancellation as ``await coro``."""

    __slots__ = ("_awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        install_task_factory()
        steps = self._awaitable.__await__()

        def run(value: Any, exc: BaseException | None) -> tuple[str, Any]:
            while True:
                try:
                    yielded = steps.throw(exc) if exc is not None else steps.send(value)
                except StopIteration as stop:
                    return ("done", stop.value)
                except BaseException as err:  # noqa: BLE001 - handed to the awaiting task as is
                    return ("raise", err)
                assert handler.parent is not None
                value, exc = handler.parent.switch(("yield", yielded))

        handler = HandlerGreenlet(run)
        handler.gr_context = contextvars.copy_context()
        message = handler.switch(None, None)
        while True:
            kind, payload = message
            if kind == "done":
                return payload
            if kind == "raise":
                raise payload
            if kind == "yield":  # the handler awaits something: the Task waits for it
                try:
                    sent = yield payload
                except BaseException as err:  # noqa: BLE001 - cancellation goes into the handler
                    message = handler.switch(None, err)
                else:
                    message = handler.switch(sent, None)
            else:  # "await": run_sync inside the handler
                try:
                    result = yield from _steps_of(payload)
                except BaseException as err:  # noqa: BLE001
                    message = handler.switch("err", err)
                else:
                    message = handler.switch("ok", result)


def _steps_of(awaitable: Any) -> Generator[Any, Any, Any]:
    return (yield from awaitable.__await__())
