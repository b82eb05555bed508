"""``self.ctx`` of a Durable Object: its id, its storage, and its input gate.

The input gate is what makes an object safe without locks in user code: the platform
delivers one event at a time to an object (see ``objects.py``), and
``blockConcurrencyWhile(fn)`` extends that to work the object starts itself, typically
loading state in the constructor.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgelet.bindings.durable_objects.isolate.gate import outside_events
from edgelet.bindings.durable_objects.isolate.websockets import WebSocketHibernation

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.ids import DurableObjectId
    from edgelet.bindings.durable_objects.isolate.objects import LiveObject
    from edgelet.bindings.durable_objects.isolate.storage import DurableObjectStorage

log = logging.getLogger("edgelet.durable_objects")


async def _run(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


class DurableObjectState(WebSocketHibernation):
    """What Cloudflare passes as ``ctx``: ``id``, ``storage``, ``blockConcurrencyWhile``,
    ``waitUntil``, and the WebSocket hibernation API (``acceptWebSocket``, ...)."""

    def __init__(self, live: LiveObject, object_id: DurableObjectId,
                 storage: DurableObjectStorage) -> None:
        self._live = live
        self.id = object_id
        self.storage = storage
        self.props: dict[str, Any] = {}

    def blockConcurrencyWhile(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:  # noqa: N802
        """Run ``fn()`` (sync or async) with no other event delivered to this object meanwhile.

        Returns an awaitable; it need not be awaited (a constructor cannot await): the event
        that called it does not finish, and no other event starts, until ``fn`` is done. If
        ``fn`` raises, the object is reset (rebuilt on its next event), as in Cloudflare.
        """
        if not callable(fn):
            raise TypeError(f"blockConcurrencyWhile() takes a function (sync or async), "
                            f"got {type(fn).__name__}")
        live = self._live
        if asyncio.current_task() in live.gate_tasks:
            task = asyncio.ensure_future(_run(fn))
            live.gate_tasks.add(task)
            task.add_done_callback(live.gate_tasks.discard)
            live.blockers.append(task)
            return task
        task = asyncio.ensure_future(live.run_gated(fn))
        live.background.add(task)  # keeps the object from being evicted until it ran
        task.add_done_callback(live.background.discard)
        return task

    block_concurrency_while = blockConcurrencyWhile

    def waitUntil(self, awaitable: Any) -> None:  # noqa: N802
        """Keep work running after the event returns (an object stays alive meanwhile).

        The task acts for no event: a call it makes back into this object waits for the
        input gate like any other caller (gate.py)."""
        task = outside_events(asyncio.ensure_future, awaitable)
        live = self._live
        live.background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            live.background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("ctx.waitUntil task of Durable Object %s failed", live.id_hex,
                          exc_info=t.exception())

        task.add_done_callback(done)

    wait_until = waitUntil

    def abort(self, reason: Any = None) -> None:
        """Reset the object: its next event builds a fresh instance (storage is kept)."""
        self._live.instance = None

    def __repr__(self) -> str:
        return f"<DurableObjectState id={self.id}>"
