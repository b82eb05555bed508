"""The WebSocket Hibernation API of Durable Objects (isolate side).

``ctx.acceptWebSocket(ws, tags)`` hands a server half to the platform: the client's
messages then reach the object's ``webSocketMessage`` / ``webSocketClose`` /
``webSocketError`` handlers, one event at a time through the object's input gate like any
other event. Such sockets do not keep the object in memory: an idle object is evicted as
usual while the host keeps the connections open (edgelet.websockets), and the next event
re-creates the object, its sockets rebuilt from what the host kept (tags, attachment).
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Coroutine
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from edgelet.bindings.durable_objects.isolate.gate import CALL_CHAIN, CURRENT_EVENT, Event
from edgelet.runtime.eager import current_task
from edgelet.runtime.websocket import (
    CLOSED,
    OPEN,
    WebSocket,
    WebSocketRequestResponsePair,
    _notify,
    flush_sends,
)

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.isolate.objects import LiveObject, LiveObjects

log = logging.getLogger("edgelet.durable_objects")

MAX_TAGS = 10
MAX_TAG_CHARS = 256

#: handler names by event, Cloudflare's first, then the snake_case aliases
HANDLERS = {
    "message": ("webSocketMessage", "web_socket_message", "websocket_message"),
    "close": ("webSocketClose", "web_socket_close", "websocket_close"),
    "error": ("webSocketError", "web_socket_error", "websocket_error"),
}


class WebSocketHibernation:
    """The hibernation half of ``ctx`` (mixed into DurableObjectState)."""

    _live: LiveObject

    def acceptWebSocket(self, ws: WebSocket, tags: list[str] | None = None) -> None:  # noqa: N802
        """Accept ``ws`` (a server half) for this object; up to 10 tags for getWebSockets."""
        if not isinstance(ws, WebSocket) or not ws.server:
            raise TypeError("acceptWebSocket() takes the server half of a WebSocketPair "
                            "(client, server = WebSocketPair()), got "
                            f"{type(ws).__name__ if not isinstance(ws, WebSocket) else 'the client half'}")
        if ws.mode is not None:
            raise RuntimeError("this WebSocket was already accepted; pass it to "
                               "ctx.acceptWebSocket() once, and do not also call accept()")
        tags = [] if tags is None else list(tags)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"acceptWebSocket(): {len(tags)} tags, at most {MAX_TAGS} allowed")
        for tag in tags:
            if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_CHARS:
                raise ValueError(f"acceptWebSocket(): tag {tag!r} must be a non-empty string of "
                                 f"at most {MAX_TAG_CHARS} characters")
        live = self._live
        ws.mode = "hibernate"
        ws.readyState = OPEN
        ws.tags = tags
        ws._owner = live.sockets
        live.sockets[ws.token] = ws
        _notify("accept", ws.token, [live.ns, live.class_name, live.id_hex, live.state.id.name],
                tags)
        pair = live.auto_response
        if pair is not None and not any(other is not ws for other in live.sockets.values()):
            # the host (and this isolate's direct sockets) forget an object's auto-response
            # with its last socket: its first socket again brings it back
            _notify("auto", live.key, [pair.request, pair.response])
        if ws._attachment is not None:
            _notify("attach", ws.token, ws._attachment)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:  # noqa: N802
        """This object's open hibernatable sockets (with ``tag``, if given)."""
        return [ws for ws in self._live.sockets.values()
                if ws.readyState == OPEN and (tag is None or tag in ws.tags)]

    def getTags(self, ws: WebSocket) -> list[str]:  # noqa: N802
        if not isinstance(ws, WebSocket) or ws.token not in self._live.sockets:
            raise TypeError("getTags() takes a WebSocket this object accepted with "
                            "ctx.acceptWebSocket()")
        return list(ws.tags)

    def setWebSocketAutoResponse(self, pair: WebSocketRequestResponsePair | None = None) -> None:  # noqa: N802
        """Answer ``pair.request`` with ``pair.response`` in the host, without waking the
        object; no argument removes it."""
        if pair is not None and not isinstance(pair, WebSocketRequestResponsePair):
            raise TypeError("setWebSocketAutoResponse() takes a WebSocketRequestResponsePair"
                            "(request, response)")
        live = self._live
        live.auto_response = pair
        _notify("auto", live.key, None if pair is None else [pair.request, pair.response])
        from edgelet.runtime import websocket
        if websocket.direct is not None:  # sockets served in this isolate answer it here
            websocket.direct.set_auto(live.key, None if pair is None else (pair.request, pair.response))

    def getWebSocketAutoResponse(self) -> WebSocketRequestResponsePair | None:  # noqa: N802
        return self._live.auto_response

    accept_web_socket = acceptWebSocket
    get_web_sockets = getWebSockets
    get_tags = getTags
    set_web_socket_auto_response = setWebSocketAutoResponse
    get_web_socket_auto_response = getWebSocketAutoResponse


def pin(ws: WebSocket) -> None:
    """``accept()`` inside a Durable Object's event: the socket keeps that object in memory
    until it closes (edgelet.runtime.websocket.on_accept)."""
    from edgelet.bindings.durable_objects.isolate import _manager
    from edgelet.bindings.durable_objects.isolate.objects import CALL_CHAIN
    chain = CALL_CHAIN.get()
    if not chain or _manager is None:
        return  # accepted by a plain Worker: nothing to pin
    live = _manager.objects.get(chain[-1])
    if live is not None:
        live.pinned[ws.token] = ws
        ws._owner = live.pinned


async def hibernated_objects(runtime: Any) -> list[str]:
    """The keys of the objects whose hibernatable sockets the host keeps open."""
    return [str(k) for k in await runtime.channel.call("websocket", "objects")]


async def restore(live: LiveObject, runtime: Any) -> None:
    """Rebuild an object's hibernatable sockets from what the host kept."""
    answer = await runtime.channel.call("websocket", "list", live.key)
    for token, tags, attachment in answer["sockets"]:
        if token in live.sockets:
            continue
        ws = WebSocket(token, server=True)
        ws.mode = "hibernate"
        ws.readyState = OPEN
        ws.tags = list(tags)
        ws._attachment = attachment
        ws._owner = live.sockets
        live.sockets[token] = ws
    auto = answer.get("auto")
    if auto and live.auto_response is None:
        live.auto_response = WebSocketRequestResponsePair(auto[0], auto[1])


def message_now(manager: LiveObjects, token: str, key: str, data: str | bytes,
                own_context: bool = False) -> Coroutine[Any, Any, None] | None:
    """The event of one message to a live object whose gate is free, as one coroutine,
    or None when the general path (``on_event``) must take it: the object is not in
    memory or not built yet, its gate is held or has waiters, its sockets must be rebuilt
    from the host first, or it has no ``webSocketMessage`` (that path raises the error).

    Why: the general path is six coroutines deep (``on_event`` -> ``deliver`` -> ``_in_gate``
    -> ``_dispatch`` -> ``deliver`` -> the handler) and builds lists and strings for the wire
    that a message from a socket served in this isolate does not need; on the benchmark's
    echo it was about half of the isolate's CPU per round trip. The socket's caller runs the
    coroutine eagerly (edgelet.runtime.eager): a handler that does not await finishes
    without a Task being scheduled. Call it and start the coroutine in the same step (the
    checks hold only until something else runs). ``own_context``: the coroutine runs in a
    context of its own (eager.start's), which it may leave with the event's variables set."""
    live = manager.objects.get(key)
    if live is None or live.instance is None:
        return None
    gate = live.gate
    if gate.holder is not None or gate._waiters:
        return None
    asked = manager._asked_host
    if asked is None or not asked.done() or (manager.hibernated and key in manager.hibernated):
        return None
    ws = live.sockets.get(token)
    if ws is None:
        return None
    fn = getattr(live.instance, "webSocketMessage", None)  # (handler's first name, inlined: per message)
    if not callable(fn):
        fn = handler(live.instance, "message")
        if fn is None:
            return None
    return _message(manager, live, ws, fn, data, own_context)


def handler(instance: Any, kind: str) -> Any:
    """The object's handler for a socket event ``kind`` (``HANDLERS``: Cloudflare's name
    first, then the snake_case aliases), or None; one lookup for both event paths."""
    for name in HANDLERS[kind]:
        fn = getattr(instance, name, None)
        if callable(fn):
            return fn
    return None


async def _message(manager: LiveObjects, live: LiveObject, ws: WebSocket, fn: Any,
                   data: str | bytes, own_context: bool) -> None:
    """One message event inside the object's input gate (see ``message_now``): the same
    steps as the general path (the gate held by an Event, the context variables of an
    event, blockConcurrencyWhile drained, the sends flushed, a failure logged), in one
    frame."""
    event = Event(live, "websocket")
    gate = live.gate
    gate.holder = event  # free (checked by message_now in this same step)
    live.active += 1
    task = current_task(manager._loop)
    gate_tasks = live.gate_tasks
    gate_tasks.add(task)  # type: ignore[arg-type]
    if own_context:  # nothing runs in this context after the event: no reset needed
        chain = current = None
        CALL_CHAIN.set((live.key,))
        CURRENT_EVENT.set(event)
    else:
        chain = CALL_CHAIN.set((live.key,))
        current = CURRENT_EVENT.set(event)
    try:
        result = fn(ws, data)
        if type(result) is CoroutineType or inspect.isawaitable(result):
            await result
        flush_sends()  # the handler's sends leave before its event ends
        if live.blockers:
            await live.drain_blockers()
    except MemoryError:
        raise  # the isolate restarts itself: memory after a MemoryError is unreliable
    except Exception as exc:
        _log_failure(live, "message", exc, traceback.format_exc())
    finally:
        if current is not None and chain is not None:
            CURRENT_EVENT.reset(current)
            CALL_CHAIN.reset(chain)
        gate_tasks.discard(task)
        event.done = True
        gate.holder = None  # (InputGate.leave, inlined)
        if gate._waiters:
            gate._wake()
        live.active -= 1
        live.last_used = manager._loop.time()
        if manager._sweep is None:
            manager._arm_sweep()


def _log_failure(live: LiveObject, kind: str, exc: BaseException, tb: str) -> None:
    """A handler raised (the fast path): logged as the general path logs its answer."""
    from edgelet.bindings.durable_objects import wire
    _log_answer(live.class_name, live.state.id.name or live.id_hex, kind, wire.error_answer(exc, tb))


def _log_answer(class_name: str, who: str, kind: str, answer: list[Any]) -> None:
    """A handler raised: the socket stays open, the error (an error answer) is logged."""
    log.error("Durable Object %s %s: WebSocket %s handler raised %s: %s\n%s", class_name, who, kind,
              answer[1], answer[2], answer[4])


async def on_event(manager: LiveObjects, payload: list[Any]) -> Any:
    """``durable_objects.websocket``: ``[token, kind, data, code, reason, route, extra]``."""
    token, kind, data, code, reason, route = payload[:6]
    ns, class_name, id_hex, name = route
    live = manager._live(ns, class_name, id_hex, name)
    if token not in live.sockets:  # the object was evicted (or the isolate restarted)
        await restore(live, manager.runtime)
        manager.hibernated.discard(live.key)
    # straight to deliver (the route was checked when the socket was accepted)
    answer = await manager.deliver(ns, class_name, id_hex, name, "websocket", kind,
                                   [token, data, code, reason], ())
    if answer[0] != 0:  # the handler raised: the socket stays open, the error is logged
        _log_answer(class_name, name or id_hex, kind, answer)
    return True


async def deliver(live: LiveObject, instance: Any, kind: str, body: list[Any]) -> None:
    """Run the object's handler for one socket event (inside its input gate)."""
    token, data, code, reason = body
    ws = live.sockets.get(token)
    if ws is None:
        return None
    if kind == "message":
        fn = handler(instance, kind)
        if fn is None:
            raise AttributeError(
                f"Durable Object class {type(instance).__name__} accepted a WebSocket with "
                f"ctx.acceptWebSocket() but has no webSocketMessage(self, ws, message) method")
        result = fn(ws, data)
        if inspect.isawaitable(result):
            await result
        flush_sends()  # the handler's sends leave before its event's answer
        return None
    # close or error: the socket is no longer open (getWebSockets() leaves it out), but it
    # stays the object's until its handler has run, so getTags(ws) there still answers (as
    # workerd drops a hibernatable socket only once its close event has completed)
    ws.readyState = CLOSED
    try:
        fn = handler(instance, kind) if kind in HANDLERS else None
        if fn is None:
            return None
        if kind == "close":
            result = _call(fn, ws, code, reason or "", code not in (1005, 1006))
        else:
            result = _call(fn, ws, RuntimeError(str(data)))
        if inspect.isawaitable(result):
            await result
        flush_sends()  # the handler's sends leave before its event's answer
    finally:
        live.sockets.pop(token, None)
    return None


def _call(fn: Any, *args: Any) -> Any:
    """Pass as many arguments as the handler takes (``webSocketClose(self, ws)`` is fine)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(*args)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return fn(*args)
    count = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return fn(*args[:count])

