"""Run a coroutine's first step at once, in its own Task, and schedule the Task only if the
coroutine suspends (what Python 3.12 calls an eager task).

Why: a WebSocket message to a Durable Object is handled by a coroutine that usually never
suspends (the handler sends and returns); scheduling a Task for it cost ~1.4 µs of a round
trip of ~15 µs (a Handle, a loop turn, the step, the WeakSet of all tasks). Run eagerly, a
handler that finishes in its first step costs no scheduling at all, and one that awaits
something continues in an ordinary Task, in the same context, as if it had been created
with ``loop.create_task(coro, context=ctx)``.

While the first step runs, ``asyncio.current_task()`` is the Task that will continue the
coroutine (so ``asyncio.timeout`` and ``TaskGroup`` work from the first line, and the
object identity stays the same across the suspension). On Python 3.11 that Task is
allocated first and initialised (which schedules it) only if the coroutine suspended; on
3.12+ the standard ``eager_start`` does the same. Where neither is possible (a pure-Python
``asyncio.Task``, or a Task is already running: the step would nest inside it), ``start``
falls back to ``loop.create_task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

_CTask: Any
try:
    from _asyncio import Task as _CTask
except ImportError:  # pragma: no cover - CPython always has the C accelerator
    _CTask = None

#: Python 3.12+: ``Task(..., eager_start=True)`` exists
_NATIVE = sys.version_info >= (3, 12)
#: Python 3.11 with the C Task: a Task can be allocated now and initialised later
_BY_HAND = not _NATIVE and _CTask is not None and asyncio.Task is _CTask

_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
#: loop -> its running Task (read directly: ``asyncio.current_task`` is a Python function on
#: 3.11 that also asks for the running loop, a ``getpid()`` system call each time)
_current_tasks: dict[Any, Any] = getattr(asyncio.tasks, "_current_tasks", {})


def current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """``asyncio.current_task(loop)`` for a caller that knows its loop (see _current_tasks)."""
    if _NATIVE:  # pragma: no cover - 3.12+: the C function
        return asyncio.current_task(loop)
    return _current_tasks.get(loop)


_SENT = object()


class _Continue(Coroutine[Any, Any, Any]):
    """The rest of a coroutine whose first step already ran: to the Task that continues
    it, its first step yields what the coroutine yielded then (the future it waits for),
    and every later step goes to the coroutine itself."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def send(self, value: Any) -> Any:
        first = self.first
        if first is not _SENT:
            self.first = _SENT
            return first
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.first = _SENT  # (cancelled before its first step: the coroutine gets it)
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:  # pragma: no cover - Tasks call send
        raise TypeError("an eagerly started coroutine continues in its Task; await the Task")

    def __getattr__(self, name: str) -> Any:
        """The coroutine's own attributes (``cr_frame``, ``cr_code``, ``__qualname__``): what
        ``Task.get_stack()`` and a Task's repr read."""
        return getattr(self.coro, name)


class _EagerTask(_CTask if _CTask is not None else asyncio.Task):  # type: ignore[misc]
    """The Task of an eagerly started coroutine.

    While its first step runs it is allocated but not initialised (initialising schedules
    it), and the C Task's ``get_coro()`` and ``get_context()`` would then read null fields
    (a crash, not an exception); these overrides answer from what is set (None while
    starting) and name the coroutine itself rather than its continuation after."""

    __slots__ = ("_eager_context",)

    def get_coro(self) -> Any:
        coro = self._coro  # (the C Task's member: None until initialised)
        return coro.coro if isinstance(coro, _Continue) else coro

    def get_context(self) -> contextvars.Context:
        context: contextvars.Context = self._eager_context
        return context

    def get_stack(self, *, limit: int | None = None) -> list[Any]:
        if self._coro is None:  # starting: nothing asyncio can read yet
            return []
        return super().get_stack(limit=limit)

    def __repr__(self) -> str:
        if self._coro is None:
            return f"<Task starting eagerly name={self.get_name()!r}>"
        return super().__repr__()


def start(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
          context: contextvars.Context | None = None) -> asyncio.Task[Any] | None:
    """Run ``coro`` until it first suspends, in ``context`` (a copy of the current one if
    None) with a Task current; return None if it finished then (its return value is
    dropped; an exception it raised propagates from here), else the Task that continues it.
    """
    ctx = contextvars.copy_context() if context is None else context
    if _NATIVE:  # pragma: no cover - the project runs 3.11; kept for 3.12+
        task: Any = asyncio.Task(coro, loop=loop, context=ctx, eager_start=True)  # type: ignore[call-arg]
        if task.done():
            task.result()  # raises what the coroutine raised
            return None
        return task
    if not _BY_HAND or _current_tasks.get(loop) is not None:
        return loop.create_task(coro, context=ctx)
    task = _CTask.__new__(_EagerTask)  # allocated, not initialised: nothing is scheduled yet
    task._eager_context = ctx
    _enter_task(loop, task)
    try:
        first = ctx.run(coro.send, None)
    except StopIteration:
        return None
    finally:
        _leave_task(loop, task)
    # it suspended: the Task now starts for real and continues it. A cancel() made during
    # the first step (recorded in the uninitialised Task) is made again, as the Task's
    # initialisation resets it.
    cancels = task.cancelling()
    try:
        _CTask.__init__(task, _Continue(coro, first), loop=loop, context=ctx)  # (schedules it)
    except BaseException:
        coro.close()
        raise
    for _ in range(cancels):
        task.cancel()
    return task
