"""The output gate of WebSocket messages: what a Durable Object sends while its storage has
writes not yet committed leaves only once they are.

Why: a write is made when called and committed at the end of the turn (storage.py); a
``ws.send`` in that turn used to reach the client at once. A crash between the two (kill -9,
the machine losing power) let the client see a message about state that was then lost.
workerd gates every outgoing WebSocket message on the actor's output locks
(api/web-socket.c++: ``send()`` and ``close()`` queue the message with
``IoContext::waitForOutputLocksIfNecessary()``, and ``pump()`` awaits that before writing);
this does the same for edgelet's sockets.

How: while some object of this isolate has uncommitted writes, the runtime's WebSocket half
(edgelet.runtime.websocket.output_gate) asks ``current_gate`` before each send; if the event
that sends belongs to an object with writes pending, the message waits (with every later one
to the same socket, so their order holds) until that storage commits: released in order on
success, dropped on a failed commit (the writes it spoke of were rolled back). With no write
pending anywhere the hook is None, and a send costs one global lookup more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgelet.bindings.durable_objects.isolate.gate import CURRENT_EVENT
from edgelet.runtime import websocket

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.isolate.storage import DurableObjectStorage

log = logging.getLogger("edgelet.durable_objects")

#: storages with an open implicit transaction -> callbacks to run when it ends (ok or not)
_pending: dict[DurableObjectStorage, list[Callable[[bool], None]]] = {}


def opened(storage: DurableObjectStorage) -> None:
    """``storage`` began a turn's transaction: sends of its object's events wait for it."""
    if storage not in _pending:
        _pending[storage] = []
        websocket.output_gate = current_gate


def ended(storage: DurableObjectStorage, committed: bool) -> None:
    """``storage``'s transaction committed (``committed``) or was rolled back: release (or
    drop) what waited for it, in the order it was sent."""
    waiting = _pending.pop(storage, None)
    if not _pending:
        websocket.output_gate = None
    for release in waiting or ():
        try:
            release(committed)
        except Exception:  # one socket's failure must not keep the others' messages
            log.exception("releasing WebSocket messages held for a storage commit failed")


def current_gate() -> Callable[[Callable[[bool], None]], None] | None:
    """For a send now: None when it may leave at once, else a function that registers the
    callback to run once the sending object's writes are committed (or rolled back)."""
    event = CURRENT_EVENT.get(None)
    if event is None:
        return None  # not inside a Durable Object's event: nothing of it to wait for
    storage = event.live.storage
    waiting = _pending.get(storage)
    if waiting is None:
        return None
    return waiting.append


def pending_count() -> int:
    """How many storages hold the gate now (for tests and the debugger)."""
    return len(_pending)
