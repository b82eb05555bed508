"""The input gate of one Durable Object: one event runs at a time, except while it waits
for another object.

Why the exception: Cloudflare's input gate closes only around storage operations, so an
object that awaits an outgoing call (RPC or ``fetch`` to another object) lets other
events in meanwhile. edgelet is stricter everywhere else (an event holds its object until
it ends, including its ``asyncio.sleep``), but holding the gate across an outgoing call
makes two objects that call each other at the same time wait for each other forever
(A.ping -> B.hello while B.ping -> A.hello). So an event *parks* while its outgoing calls
are in flight (the gate lets the next event in) and takes the gate back, in turn, when the
last of them has answered. Code that is correct on Cloudflare stays correct: it already
had to expect other events at those points.

Which event a task acts for is the context variable :data:`CURRENT_EVENT`. Tasks the
event starts inherit it; once the event has ended (``Event.done``) they act for nobody,
so a late ``waitUntil`` task that calls back into its object waits for the gate like any
other caller instead of slipping in beside the event running now.
``blockConcurrencyWhile`` never parks: no event may enter while it runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.isolate.objects import LiveObject


class Event:
    """One event of one object: the token its tasks carry while it runs."""

    __slots__ = ("live", "what", "done", "outgoing", "parked", "exclusive", "caller", "_chain",
                 "waiting")

    def __init__(self, live: LiveObject, what: str, exclusive: bool = False,
                 caller: tuple[str, ...] = ()) -> None:
        self.live = live
        #: the events up the call chain before this one (see ``chain``)
        self.caller = caller
        self._chain: tuple[str, ...] | None = None
        #: how messages name the event (``Room.ping``, ``alarm``)
        self.what = what
        self.done = False
        #: outgoing calls in flight (several when the event gathers them)
        self.outgoing = 0
        #: the event gave the gate up for its outgoing calls and must take it back
        self.parked = False
        #: blockConcurrencyWhile from outside an event: never parks
        self.exclusive = exclusive
        #: the calls it waits for now, as messages name them (``Room 'x' hello()``)
        self.waiting: list[str] = []

    @property
    def chain(self) -> tuple[str, ...]:
        """The events up the call chain, this one last (``ns/id#token`` strings: they cross
        the host between isolates); a call that comes back to an object whose gate this very
        event holds right now re-enters instead of waiting for itself.

        Built on first use: most events (a WebSocket message, a fetch that calls nobody)
        never need it, and formatting it was a tenth of a socket message's cost."""
        chain = self._chain
        if chain is None:
            chain = self._chain = self.caller + (f"{self.live.key}#{_token()}",)
        return chain

    def __repr__(self) -> str:
        return f"<Event {self.what} of {self.live.key}{' done' if self.done else ''}>"


_tokens = itertools.count(1)
#: this process's id, read once (``os.getpid()`` is a system call); reset in a forked child
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def _token() -> str:
    """Unique per process and across restarts of the isolate (a chain can outlive one)."""
    return f"{_pid}.{next(_tokens)}"


def chain_of(event: Event | None) -> tuple[str, ...]:
    """The call chain a call made now for ``event`` carries (none once it has ended)."""
    return () if event is None or event.done else event.chain


def reenters(gate: InputGate, chain: tuple[str, ...]) -> bool:
    """A call whose chain holds the event that holds ``gate`` right now (A -> B -> A while
    A cannot park, e.g. inside blockConcurrencyWhile): waiting would wait for itself."""
    holder = gate.holder
    if holder is None or holder.done or holder._chain is None:
        return False  # (a chain never built was never passed on: no call carries it)
    return holder._chain[-1] in chain


#: the objects (``ns/id``) the current task is running on behalf of, outermost first;
#: for messages (and the object a socket accepted here belongs to), never for the gate
#: (objects.py re-exports it)
CALL_CHAIN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "edgelet_do_call_chain", default=())

#: the event the current task acts for (None outside any object's event)
CURRENT_EVENT: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "edgelet_do_event", default=None)


class InputGate:
    """FIFO hand-off lock whose holder is an :class:`Event`, not a task."""

    def __init__(self) -> None:
        self.holder: Event | None = None
        self._waiters: deque[tuple[Event, asyncio.Future[None]]] = deque()
        #: events parked in outgoing calls (they will take the gate back)
        self.parked = 0

    def locked(self) -> bool:
        """Whether any event is running, waiting, or parked (the object is in use)."""
        return self.holder is not None or bool(self._waiters) or self.parked > 0

    async def enter(self, event: Event) -> None:
        """Wait for the gate, in turn, and hold it for ``event``."""
        if self.holder is None and not self._waiters:
            self.holder = event
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we gave up
                self.leave(event)
            else:
                try:
                    self._waiters.remove((event, waiter))
                except ValueError:
                    pass
            raise

    def leave(self, event: Event) -> None:
        """``event`` ended (or gave up): the next waiter gets the gate."""
        if self.holder is event:
            self.holder = None
            self._wake()

    def _wake(self) -> None:
        while self.holder is None and self._waiters:
            event, waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            self.holder = event
            waiter.set_result(None)

    def park(self, event: Event) -> bool:
        """Let the next event in while ``event`` waits for an outgoing call."""
        if self.holder is not event:
            return False
        self.holder = None
        self.parked += 1
        self._wake()
        return True

    async def unpark(self, event: Event) -> None:
        """Take the gate back after the outgoing calls of ``event`` answered."""
        self.parked -= 1
        if not event.done:
            await self.enter(event)


def may_park(event: Event | None) -> bool:
    """Whether an outgoing call made for ``event`` may let other events in."""
    if event is None or event.done or event.exclusive:
        return False
    return not event.live.blockers  # blockConcurrencyWhile holds the gate shut


@asynccontextmanager
async def outgoing(event: Event | None, target: str) -> AsyncIterator[None]:
    """Around one outgoing call of ``event`` (to ``target``): park while it is in flight,
    take the gate back (in turn) when the last one answered. Outside a running event, or
    inside blockConcurrencyWhile, the gate stays as it is."""
    if event is None or event.done:
        yield
        return
    event.waiting.append(target)
    if not may_park(event):
        try:
            yield
        finally:
            event.waiting.remove(target)
        return
    gate = event.live.gate
    event.outgoing += 1
    if event.outgoing == 1 and not event.parked:
        event.parked = gate.park(event)
    try:
        yield
    finally:
        event.waiting.remove(target)
        event.outgoing -= 1
        if event.outgoing == 0 and event.parked:
            event.parked = False
            await gate.unpark(event)


def outside_events(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` with no current event (a ``waitUntil`` task: it outlives its event
    and must queue for the gate like any caller)."""
    ctx = contextvars.copy_context()
    ctx.run(CURRENT_EVENT.set, None)
    return ctx.run(fn, *args)
