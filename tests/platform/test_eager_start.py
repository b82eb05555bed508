"""edgelet.runtime.eager.start: a coroutine's first step runs at once, a Task is scheduled only
if it suspends, and from the first line on it behaves as in an ordinary Task.

What a Worker's code would notice if this were wrong: ``asyncio.timeout``/``TaskGroup`` failing
("should be used inside a task") in a WebSocket handler, the current task changing across
an ``await``, a context variable set in the handler leaking into the next one, a cancel lost.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from edgelet.runtime import eager


def on_both_loops(body: Any) -> Any:
    """Run the async ``body`` once on asyncio's loop and once on uvloop (the isolate's)."""

    @pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
    def test(loop_kind: str) -> None:
        if loop_kind == "uvloop":
            import uvloop
            uvloop.run(body())
        else:
            asyncio.run(body())

    test.__name__, test.__doc__ = body.__name__, body.__doc__
    return test


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("eager_test_var", default="unset")


async def in_callback(fn: Any) -> Any:
    """Run ``fn()`` from a plain loop callback (as a protocol's data_received runs: no
    Task is current), return what it returned."""
    loop = asyncio.get_running_loop()
    box: asyncio.Future[Any] = loop.create_future()

    def call() -> None:
        try:
            box.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.set_exception(exc)

    loop.call_soon(call)
    return await box


@on_both_loops
async def test_a_coroutine_that_does_not_suspend_finishes_without_a_task():
    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    async def quick() -> None:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(5):  # needs a current task
            VAR.set("inside")
        seen.append(VAR.get())

    before = len(asyncio.all_tasks())
    assert await in_callback(lambda: eager.start(loop, quick())) is None
    assert seen[0] is not None and seen[1] == "inside"
    assert len(asyncio.all_tasks()) == before  # nothing scheduled
    assert VAR.get() == "unset"  # its context was its own


@on_both_loops
async def test_a_coroutine_that_suspends_continues_in_the_same_task_and_context():
    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    async def slow() -> str:
        first = asyncio.current_task()
        VAR.set("mine")
        async with asyncio.timeout(5):
            await asyncio.sleep(0.01)
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0.01))
        seen.extend([first, asyncio.current_task(), VAR.get()])
        return "done"

    task = await in_callback(lambda: eager.start(loop, slow()))
    assert isinstance(task, asyncio.Task)
    assert await task == "done"
    assert seen[0] is task and seen[1] is task and seen[2] == "mine"
    assert VAR.get() == "unset"


@on_both_loops
async def test_an_exception_in_the_first_step_reaches_the_caller():
    loop = asyncio.get_running_loop()

    async def bad() -> None:
        raise ValueError("broken handler")

    with pytest.raises(ValueError, match="broken handler"):
        await in_callback(lambda: eager.start(loop, bad()))


@on_both_loops
async def test_an_exception_after_suspending_is_the_tasks():
    loop = asyncio.get_running_loop()

    async def bad_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    task = await in_callback(lambda: eager.start(loop, bad_later()))
    with pytest.raises(KeyError):
        await task


@on_both_loops
async def test_a_cancel_during_the_first_step_is_honoured_at_the_first_await():
    loop = asyncio.get_running_loop()

    async def cancels_itself() -> str:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    task = await in_callback(lambda: eager.start(loop, cancels_itself()))
    assert await asyncio.wait_for(task, 2) == "cancelled"


@on_both_loops
async def test_a_timeout_set_in_the_first_step_expires_in_the_task():
    loop = asyncio.get_running_loop()

    async def waits_too_long() -> str:
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "no timeout"

    task = await in_callback(lambda: eager.start(loop, waits_too_long()))
    assert await asyncio.wait_for(task, 2) == "timed out"


@on_both_loops
async def test_inside_a_running_task_it_is_an_ordinary_task():
    """A step cannot nest inside the running Task: it is scheduled as usual."""
    loop = asyncio.get_running_loop()
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    task = eager.start(loop, work())
    assert isinstance(task, asyncio.Task) and ran == []
    await task
    assert ran == [1]


@on_both_loops
async def test_the_task_can_be_inspected_before_and_after_it_suspends():
    """repr, get_coro, get_context, get_stack of the current task, from the first step (the
    Task is not initialised yet) and after the await: answers, never a crash."""
    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    async def inspects() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append((repr(task), task.get_coro(), task.get_context(), task.get_stack()))
        await asyncio.sleep(0)
        seen.append((repr(task), task.get_coro(), task.get_context(), task.get_stack()))

    task = await in_callback(lambda: eager.start(loop, inspects()))
    await task
    (repr1, coro1, ctx1, _), (repr2, coro2, ctx2, stack2) = seen
    assert "eagerly" in repr1 and "inspects" in repr2
    assert coro1 is None and coro2.__qualname__.endswith("inspects")
    assert ctx1 is ctx2 and isinstance(ctx1, contextvars.Context)
    assert any(frame.f_code.co_name == "inspects" for frame in stack2)
