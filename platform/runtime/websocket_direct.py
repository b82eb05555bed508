"""WebSockets this isolate serves itself: the client's connection, handed over by the host.

Why: on the host path every message crosses four processes in turn (client -> host ->
isolate -> host -> client). Once the host has completed an upgrade whose server half was
accepted here (``ctx.acceptWebSocket`` or ``accept()``), it passes the connection's
descriptor to this isolate (edgelet.handoff, kind ``"ws"``), and the protocol is spoken
here: a client's message goes to the handler in this process, ``send`` writes to the
socket, a broadcast frames its message once and writes it to each socket, and an
auto-response is answered without waking (or creating) the object.

The framing and the closing handshake are ``websockets``' sans-I/O ``Protocol``, created
already OPEN (the host did the handshake); this module only moves bytes and events.

The order of a socket's outgoing messages is kept across the hand-over: what the Worker
sent before this isolate had the connection went to the host as notifications; until the
host says ``ws.go`` (after writing all of those), what is sent here is held. The host
keeps a duplicate of the descriptor, with the socket's route, tags and attachment, so the
socket outlives this process: after a crash or a reload it is handed to the next isolate.
When this side finishes a connection it shuts the socket down (the host's duplicate does
not keep it open) and tells the host (``ws gone``), which logs the close and drops its copy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, SERVER, Protocol

from edgelet.runtime.eager import start as _eager_start

try:  # websockets' C unmasking (the pure-Python one when the wheel has no speedups)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - every wheel for this platform ships it
    from websockets.utils import apply_mask

log = logging.getLogger("edgelet.websocket")
#: the protocol's own logger: websockets logs every closed connection at INFO, which the
#: isolate would forward to the Worker's log (the host logs opens and closes itself)
_protocol_log = logging.getLogger("edgelet.websocket.protocol")
_protocol_log.setLevel(logging.WARNING)

#: the handoff kind of a WebSocket connection
KIND = "ws"
#: seconds a close we started waits for the client's reply before the socket is dropped
CLOSE_TIMEOUT_S = 5.0
#: messages waiting for their handler past which the socket stops being read
_INBOX_PAUSE = 32

#: connections served here, by token
connections: dict[str, DirectSocket] = {}
#: Durable Object (``ns/id``) -> (request, response) answered here without waking it; only
#: for objects with a socket served here (see ``_keys``: the host keeps the table for all)
auto: dict[str, tuple[str, str]] = {}
#: Durable Object (``ns/id``) -> how many of its sockets are served here; an object's
#: auto-response entry goes with its last socket
_keys: dict[str, int] = {}

#: the message last framed by ``send`` and its frame: a broadcast loop sends the same
#: object to every socket, and server frames are unmasked, so one frame serves them all
_last_message: str | bytes | None = None
_last_frame = b""
#: frames past this size are not kept past the loop turn that made them
_KEEP_FRAME = 64 * 1024
#: bytes a socket may have waiting to leave before the next message to it ends it instead
#: (see DirectSocket.overflow); the host's path applies the same (edgelet.websockets)
MAX_UNSENT = max(int(os.environ.get("EDGELET_WS_MAX_UNSENT", str(16 * 1024 * 1024))), 64 * 1024)

_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE



def frame(data: str | bytes) -> bytes:
    """One unfragmented, unmasked server frame carrying ``data`` (the same bytes for every
    client: no extensions are negotiated), header and payload in one ``bytes`` so that it
    leaves in one write.

    Why not ``websockets.frames.Frame.serialize``: a data frame from a server is a 2-10 byte
    header before the payload (RFC 6455 5.2), and building it here is a third of the cost of
    the library's general path (RSV checks, extensions, masking), paid on every send."""
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError:  # a lone surrogate: U+FFFD, as a JS string on Cloudflare
            from edgelet.channel import well_formed
            text: str = well_formed(data)
            data = text.encode()
        op = 0x81  # FIN + text
    else:
        op = 0x82  # FIN + binary
    n = len(data)
    if n < 126:
        return bytes((op, n)) + data
    if n < 65536:
        return bytes((op, 126, n >> 8, n & 0xFF)) + data
    return bytes((op, 127)) + n.to_bytes(8, "big") + data


def send(sock: DirectSocket, message: str | bytes) -> None:
    """Write ``message`` to ``sock`` as one frame (the Worker's ``ws.send``), reusing the
    frame of the previous send when it is the same message object (a broadcast)."""
    global _last_message, _last_frame
    if sock.server_closed:
        return
    if message is not _last_message:
        raw = frame(message)
        if len(raw) > _KEEP_FRAME:
            asyncio.get_running_loop().call_soon(forget_frame)
        _last_message, _last_frame = message, raw
    if sock.held is None:  # (DirectSocket.write, inlined: it is every message's path)
        transport = sock.transport
        if transport is not None and not transport.is_closing():
            if sock.write_blocked and sock.overflow():
                return
            transport.write(_last_frame)
    else:
        sock.hold(_last_frame)


def forget_frame() -> None:
    """Drop the kept frame (the end of an event: its message is not kept alive)."""
    global _last_message, _last_frame
    _last_message, _last_frame = None, b""


def set_auto(key: str, pair: tuple[str, str] | None) -> None:
    """``setWebSocketAutoResponse`` of the object ``key``: kept only while one of its
    sockets is served here (the host holds it for the rest and hands it over with the next)."""
    if pair is None:
        auto.pop(key, None)
    elif key in _keys:
        auto[key] = (str(pair[0]), str(pair[1]))



def parser_at_frame_start(parser: Any) -> bool:
    """Whether a websockets sans-I/O parser (a generator that delegates with ``yield from``)
    waits at the start of a frame: only there does its innermost generator wait in
    ``StreamReader.at_eof``. Both halves use it to hand a socket over between frames."""
    gen = parser
    while getattr(gen, "gi_yieldfrom", None) is not None:
        gen = gen.gi_yieldfrom
    return getattr(getattr(gen, "gi_code", None), "co_name", "") == "at_eof"

class DirectSocket(asyncio.Protocol):
    """One handed-over connection: parse the client's frames, run the handler for each
    message in order, write what the Worker sends."""

    __slots__ = ("token", "route", "key", "proto", "transport", "sock", "held", "parts",
                 "text", "inbox", "busy", "paused", "server_closed", "finished", "code",
                 "reason", "timer", "lost", "releasing", "clean", "max_size", "loop",
                 "write_blocked", "held_bytes")

    def __init__(self, token: str, route: list[Any] | None, max_size: int | None,
                 sock: socket.socket) -> None:
        self.token = token
        #: [namespace, class, id, name] of the Durable Object that hibernates it, else None
        #: (a socket the Worker ``accept()``-ed: its listeners run here)
        self.route = route
        self.key = f"{route[0]}/{route[2]}" if route else None
        self.proto = Protocol(SERVER, state=OPEN, max_size=max_size, logger=_protocol_log)
        self.max_size = max_size
        #: the isolate's loop (``get_running_loop()`` costs a ``getpid()`` call on 3.11)
        self.loop = asyncio.get_running_loop()
        #: the protocol is OPEN and waits at the start of a frame with nothing buffered and
        #: no fragmented message under way: complete messages can take the fast path
        self.clean = True
        self.transport: asyncio.Transport | None = None
        self.sock = sock
        #: frames held until the host has written what it was given before (``ws.go``)
        self.held: list[bytes] | None = []
        self.held_bytes = 0
        #: a fragmented message's parts so far
        self.parts: list[bytes] | None = None
        self.text = False
        self.inbox: deque[tuple[str, Any, Any, Any]] | None = None
        self.busy = False
        self.paused = False
        #: the Worker closed it: the client's answering close is not an event for it
        self.server_closed = False
        #: a close (or error) has been queued for the handler: no second one
        self.finished = False
        self.code = 1006
        self.reason = ""
        self.timer: asyncio.TimerHandle | None = None
        #: the connection is gone; the host hears so once the handler has seen the close
        self.lost = False
        #: a reload is coming: stop reading at the next frame boundary (see release)
        self.releasing = False
        #: the client does not read what is written to it fast enough (the transport's
        #: buffer is over its high-water mark): its own messages are not read meanwhile
        self.write_blocked = False

    # -- the connection ----------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.clean:
            data = self._complete_frames(data)
            if not data and self.clean:
                if self.releasing and self.transport is not None:
                    self.transport.pause_reading()  # at a frame boundary
                return
        proto = self.proto
        try:
            proto.receive_data(data)
        except EOFError:  # data after the end: ignore
            return
        # after the handshake a Protocol yields frames only
        for ev in cast("list[Frame]", proto.events_received()):
            op = ev.opcode
            if op is _TEXT or op is _BINARY:
                self.text = op is _TEXT
                if ev.fin:
                    self._message(cast(bytes, ev.data))
                else:
                    self.parts = [cast(bytes, ev.data)]
            elif op is _CONT:
                if self.parts is not None:
                    self.parts.append(cast(bytes, ev.data))
                    if ev.fin:
                        data_, self.parts = b"".join(self.parts), None
                        self._message(data_)
            elif op is _CLOSE:
                rcvd = proto.close_rcvd
                code, reason = (rcvd.code, rcvd.reason) if rcvd is not None else (1005, "")
                self._finish(code, reason)
        if proto.parser_exc is not None and proto.close_sent is not None:
            # over the size limit (1009), bad UTF-8 (1007), a protocol error (1002)
            self._finish(proto.close_sent.code, proto.close_sent.reason)
        self._flush_proto()
        at_boundary = self.between_frames()
        self.clean = at_boundary and proto.state is OPEN and proto.current_size is None
        if self.releasing and at_boundary and self.transport is not None:
            self.transport.pause_reading()

    def _complete_frames(self, data: bytes) -> bytes:
        """The fast path: deliver the complete, unfragmented text or binary frames at the
        start of ``data`` (the usual case: one small message per read) without the
        library's generator parser; return what is left for ``websockets`` to parse.

        Only called while ``clean``; anything else (a control frame, a fragment, a frame
        not yet complete, RSV bits, no mask, a 64-bit length, a message over the limit)
        stops it, and the library parses from that byte on, exactly as if it had parsed
        the frames before too (they leave it at a frame boundary, its state unchanged)."""
        n = len(data)
        pos = 0
        limit = self.max_size
        while n - pos >= 6:
            head = data[pos]
            length = data[pos + 1]
            if (head != 0x81 and head != 0x82) or length < 0x80:
                break  # not FIN + text/binary without RSV bits, or not masked
            length &= 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126:
                if n - pos < 8:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                break
            end = start + length
            if end > n or (limit is not None and length > limit):
                break
            self.text = head == 0x81
            pos = end
            self._message(apply_mask(data[start:end], data[start - 4:start]))
            if not self.clean:  # the message failed the connection (bad UTF-8)
                break
        return data[pos:] if pos else data

    def between_frames(self) -> bool:
        """Nothing of the client's is half read: the parser waits at the start of a frame
        (websockets' ``parse()`` waits in ``StreamReader.at_eof`` only there) and no
        fragmented message is under way."""
        if self.parts is not None or self.proto.reader.buffer:
            return False
        return parser_at_frame_start(self.proto.parser)

    def eof_received(self) -> bool:
        self.clean = False
        try:
            self.proto.receive_eof()
        except EOFError:  # already at its end
            pass
        self._flush_proto()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._finish(1006, "")  # vanished without a close frame (nothing if one came)
        self.held = None
        self.lost = True
        if not self.busy:  # else once the handler has run: the host keeps the socket's
            self._gone()   # tags and attachment until then (an evicted object needs them)

    def _gone(self) -> None:
        if connections.get(self.token) is not self:
            return  # replaced by a newer hand-over of the same token: the host keeps that one
        _forget(self)
        _notify_host("gone", self.token, self.code, self.reason)

    def _message(self, data: bytes) -> None:
        if self.server_closed or self.finished:
            return  # past the Worker's close: not delivered
        if self.text:
            try:
                value: str | bytes = data.decode()
            except UnicodeDecodeError as exc:
                self.clean = False
                self.proto.fail(1007, f"invalid UTF-8 at position {exc.start}")
                self._finish(1007, "invalid UTF-8")
                return
        else:
            value = bytes(data)
        if self.key is not None:
            pair = auto.get(self.key)
            if pair is not None and value == pair[0]:
                self.write(frame(pair[1]))  # answered without the object
                return
        self._enqueue(("message", value, None, None))

    def _finish(self, code: int, reason: str) -> None:
        """The connection ends with ``code``: tell the handler once (unless it closed it)."""
        if self.finished:
            return
        self.finished = True
        if self.server_closed:
            return
        self.code, self.reason = code, reason
        self._enqueue(("close", None, code, reason))

    def _flush_proto(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.write(data)
            else:  # the protocol is done with the connection: half-close, then close
                self._end()

    def _end(self) -> None:
        if self.held is not None:
            self.held.append(b"")  # after what is held
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write_eof() if transport.can_write_eof() else None
            transport.close()

    # -- writing -------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        held = self.held
        if held is not None:
            held.append(data)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def hold(self, data: bytes) -> None:
        """Keep a message until ``ws.go`` (under the same bound as the transport's buffer)."""
        held = self.held
        if held is None or self.server_closed or self.lost:
            return
        if self.held_bytes >= MAX_UNSENT:
            self._overflowed(self.held_bytes)
            return
        self.held_bytes += len(data)
        held.append(data)

    def overflow(self) -> bool:
        """Whether the client has fallen so far behind that a message to it must not be
        buffered: True once MAX_UNSENT bytes wait in the transport (the connection is ended
        then); False, and the message is written, below that. Asked only while the
        transport is over its high-water mark (``write_blocked``), so not on the usual path.

        Why: a client that does not read (a stalled tab, a dead peer whose TCP has not
        timed out yet) would otherwise make every broadcast grow this process without bound.
        workerd queues a socket's sends in the isolate with no cap of its own
        (api/web-socket.c++, ``outgoingMessages`` drained by ``pump()``), so there the bound
        is the isolate's 128 MB memory limit, whose reset drops every socket of the object;
        here only the socket that is behind is ended, and the others are not affected."""
        transport = self.transport
        if transport is None:
            return False
        waiting = transport.get_write_buffer_size()
        if waiting < MAX_UNSENT:
            return False
        self._overflowed(waiting)
        return True

    def _overflowed(self, waiting: int) -> None:
        """End a connection whose client does not read (see ``overflow``): its handler gets
        a close with 1006 (nothing can reach the client in order any more, not even a close
        frame), the log says which socket and how to raise the bound."""
        log.warning("WebSocket %s: closed, its client is not reading: %d bytes were waiting to "
                    "be sent to it (the bound is %d, EDGELET_WS_MAX_UNSENT); later messages "
                    "to it were dropped", self.token[:8], waiting, MAX_UNSENT)
        self._finish(1006, f"the client did not read: over {MAX_UNSENT} bytes waited to be sent to it")
        self.server_closed = True  # nothing more is sent to it
        self.held = None
        self.held_bytes = 0
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the host's duplicate keeps it open otherwise
        except OSError:
            pass
        if self.transport is not None:
            self.transport.abort()  # drop what waits in this process now

    def go(self) -> None:
        """The host has written everything it had for this socket: write from here now."""
        held, self.held = self.held, None
        self.held_bytes = 0
        for data in held or ():
            if data:
                self.write(data)
            else:
                self._end()

    def close(self, code: int, reason: str) -> None:
        """The Worker closes the socket: a close frame now, the connection once the client
        answers (or after CLOSE_TIMEOUT_S)."""
        if self.server_closed:
            return
        self.server_closed = True
        if self.lost:  # already over: nothing to send
            return
        if self.code == 1006 and not self.finished:
            self.code, self.reason = code, reason
        self.clean = False  # the client's answering close and what precedes it: the library
        proto = self.proto
        if proto.state is OPEN:
            proto.send_close(code, reason)
            self._flush_proto()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(CLOSE_TIMEOUT_S, self._abort)

    def _abort(self) -> None:
        self.timer = None
        self.shutdown()

    def shutdown(self) -> None:
        """End the TCP connection now, whoever else holds its descriptor (the host does)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.transport is not None:
            self.transport.close()

    # -- the handler -----------------------------------------------------------------------
    def _enqueue(self, item: tuple[str, Any, Any, Any]) -> None:
        if self.busy:
            inbox = self.inbox
            if inbox is None:
                inbox = self.inbox = deque()
            inbox.append(item)
            if len(inbox) >= _INBOX_PAUSE and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            return
        self.busy = True
        loop = self.loop
        if item[0] == "message" and self.route is not None:
            coro = message_now(self, item[1], True)
            if coro is not None:  # a live object with its gate free: run it now (eager.py)
                try:
                    task = _eager_start(loop, coro)
                except Exception:
                    log.exception("WebSocket message event for %s failed", self.token[:8])
                    task = None
                if task is not None:  # it awaits something: the rest runs in its Task
                    task.add_done_callback(self._event_done)
                    return
                nxt = self._next()
                if nxt is not None:
                    loop.create_task(self._run(nxt))
                return
        loop.create_task(self._run(item))

    def _event_done(self, task: asyncio.Task[Any]) -> None:
        """An eagerly started message event finished in its Task: the socket's next one."""
        if not task.cancelled() and task.exception() is not None:
            log.error("WebSocket message event for %s failed", self.token[:8],
                      exc_info=task.exception())
        nxt = self._next()
        if nxt is not None:
            self.loop.create_task(self._run(nxt))

    def _next(self) -> tuple[str, Any, Any, Any] | None:
        """The socket's next waiting event, or None: it is idle now (and the host hears of
        a connection lost meanwhile, a paused one is read again)."""
        inbox = self.inbox
        if inbox:
            return inbox.popleft()
        self.inbox = None
        self.busy = False
        if self.lost:
            self._gone()
        elif self.paused:
            self.paused = False
            self._resume()
        return None

    def _resume(self) -> None:
        """Read the client again unless something else still holds reading paused."""
        transport = self.transport
        if transport is not None and not (self.paused or self.write_blocked or self.releasing):
            transport.resume_reading()

    # -- backpressure ----------------------------------------------------------------------
    def pause_writing(self) -> None:
        """The client reads slower than it is written to: stop reading its messages until
        the buffer drains, so that a client sending and not reading the answers (an echo)
        cannot make this process buffer without bound; the kernel's buffers and TCP's
        window then hold the client back."""
        self.write_blocked = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._resume()

    async def _run(self, item: tuple[str, Any, Any, Any]) -> None:
        while True:
            kind, data, code, reason = item
            try:
                coro = message_now(self, data, False) if kind == "message" and self.route is not None else None
                if coro is not None:
                    await coro
                    known = True
                else:
                    known = await deliver(self, kind, data, code, reason)
            except Exception:
                log.exception("WebSocket %s event for %s failed", kind, self.token[:8])
                known = True
            if not known and kind == "message":
                self.close(1011, "the Worker that accepted it restarted")
            if kind == "close":  # the handler has seen the end: the connection can go
                self._end_after_close()
            nxt = self._next()
            if nxt is None:
                return
            item = nxt

    def _end_after_close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and self.held is None \
                and self.proto.state is not OPEN and self.proto.eof_sent:
            transport.close()


def message_now(sock: DirectSocket, data: str | bytes, own_context: bool) -> Coroutine[Any, Any, None] | None:
    """A message to a hibernatable socket as one coroutine, when its object is live and its
    gate free (edgelet.bindings.durable_objects.isolate.websockets.message_now); None when
    ``deliver`` must take it."""
    manager = (_objects or _import_objects())._manager
    if manager is None:
        return None
    return _message_now(manager, sock.token, sock.key, data, own_context)


def _message_now(manager: Any, token: str, key: Any, data: str | bytes, own_context: bool) -> Any:
    global _message_now
    from edgelet.bindings.durable_objects.isolate.websockets import message_now as fn
    _message_now = fn  # looked up once: every message of a hibernatable socket
    return fn(manager, token, key, data, own_context)


def deliver(sock: DirectSocket, kind: str, data: Any, code: Any, reason: Any) -> Awaitable[Any]:
    """Run the Worker's handler for one event of ``sock`` (the awaitable of the handler's
    dispatcher itself, no coroutine of its own: one frame less per message); it gives a
    false value when nothing here knows the socket any more (an ``accept()``-ed socket
    whose listeners are gone)."""
    if sock.route is None:
        return _accepted_event([sock.token, kind, data, code, reason])
    manager = (_objects or _import_objects())._manager
    if manager is None:
        log.error("a hibernatable WebSocket reached an isolate that runs no Durable Objects")
        return _unknown()
    return _object_event(manager, [sock.token, kind, data, code, reason, sock.route])


async def _unknown() -> bool:
    return False


_objects: Any = None


def _import_objects() -> Any:
    """The Durable Objects' isolate half, imported once (every message of a hibernatable
    socket asks for its manager)."""
    global _objects
    from edgelet.bindings.durable_objects import isolate
    _objects = isolate
    return isolate


def _accepted_event(payload: list[Any]) -> Any:
    from edgelet.runtime.websocket import on_event
    return on_event(payload)


def _object_event(manager: Any, payload: list[Any]) -> Any:
    global _object_event
    from edgelet.bindings.durable_objects.isolate.websockets import on_event
    _object_event = on_event  # looked up once: every message of a hibernatable socket
    return on_event(manager, payload)


def _notify_host(*args: Any) -> None:
    from edgelet.runtime.isolate import Runtime
    runtime = Runtime.current
    if runtime is not None and not runtime.channel.closed:
        runtime.channel.notify("ws", *args)


# -- from the host -----------------------------------------------------------------------------
def adopt(conn: socket.socket, data: bytes, meta: dict[str, Any]) -> None:
    """The handoff callback of kind ``"ws"``: serve ``conn`` from now on.

    ``meta``: ``token``, ``route`` (or None), ``max`` (the message size limit), ``auto``
    (the object's auto-response pair, or None). ``data``: bytes the host read from the
    connection after the handshake and did not parse (the start of the client's first
    frames)."""
    token = str(meta["token"])
    old = connections.get(token)
    if old is not None:  # cannot happen unless the host lost track: the newer one wins
        _forget(old)  # (not shutdown(): the new descriptor is the same connection)
        if old.transport is not None:
            old.transport.abort()
    route = meta.get("route")
    sock = DirectSocket(token, list(route) if route else None, meta.get("max"), conn)
    connections[token] = sock
    key = sock.key
    if key is not None:
        _keys[key] = _keys.get(key, 0) + 1
        pair = meta.get("auto")
        if pair:
            auto[key] = (str(pair[0]), str(pair[1]))
    conn.setblocking(False)
    asyncio.get_running_loop().create_task(_serve(sock, conn, data))


async def _serve(sock: DirectSocket, conn: socket.socket, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(lambda: sock, sock=conn)
    except Exception as exc:  # the descriptor is unusable: the host keeps its copy
        log.warning("could not serve a handed-over WebSocket %s: %s", sock.token[:8], exc)
        if connections.get(sock.token) is sock:
            _forget(sock)
        conn.close()
        _notify_host("gone", sock.token, 1011, "the isolate could not take the connection")
        return
    if data:
        sock.data_received(data)
    _notify_host("took", sock.token)


def _forget(sock: DirectSocket) -> None:
    """``sock`` is no longer served here; its object's auto-response goes with its last
    socket (why: the table had one entry for every object that ever had a socket here)."""
    del connections[sock.token]
    key = sock.key
    if key is not None:
        left = _keys.get(key, 1) - 1
        if left > 0:
            _keys[key] = left
        else:
            _keys.pop(key, None)
            auto.pop(key, None)


def on_go(token: str) -> None:
    """``ws.go`` from the host: it wrote everything it had for ``token``."""
    sock = connections.get(token)
    if sock is not None:
        sock.go()


async def release(timeout: float) -> list[str]:
    """A reload is coming: stop reading every socket at a frame boundary and let the
    handlers running finish, for up to ``timeout`` seconds; return the tokens still half
    way through a client's frame (the next process could not parse the rest) or whose
    messages are still being handled (they die with this process: the client must know).

    The connections stay open: the host hands them to the next process."""
    for sock in connections.values():
        sock.releasing = True
        if sock.between_frames() and sock.transport is not None:
            sock.transport.pause_reading()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(not s.busy and (s.lost or s.between_frames()) for s in connections.values()):
            break
        await asyncio.sleep(0.01)
    return [t for t, s in connections.items()
            if not s.lost and (s.busy or s.inbox or not s.between_frames())]


def send_frames(tokens: list[str], data: str | bytes) -> list[str]:
    """Write ``data`` to each of ``tokens`` served here (framed once); return the tokens
    that are not (they go through the host)."""
    rest: list[str] = []
    raw: bytes | None = None
    for token in tokens:
        sock = connections.get(token)
        if sock is None:
            rest.append(token)
            continue
        if sock.server_closed:
            continue
        if raw is None:
            raw = frame(data)
        if sock.held is not None:
            sock.hold(raw)
        elif not (sock.write_blocked and sock.overflow()):
            sock.write(raw)
    return rest


def close(token: str, code: int, reason: str) -> bool:
    """Close ``token`` if it is served here; False when it is the host's."""
    sock = connections.get(token)
    if sock is None:
        return False
    sock.close(code, reason)
    return True


#: how long a close the host asks for waits for this process's unsent bytes to leave
HOST_CLOSE_DRAIN_S = 2.0


async def close_for_host(token: str, code: int, reason: str) -> bool:
    """The host ends a socket served here (a reload, a stop): the close frame goes out
    after whatever this process is still writing, never inside a frame of it (the host
    writing on its duplicate descriptor could interleave bytes). True once everything,
    the close frame included, reached the kernel; False when the client did not read it
    within HOST_CLOSE_DRAIN_S, or the socket is not served here."""
    sock = connections.get(token)
    if sock is None:
        return False
    sock.close(code, reason)
    transport = sock.transport
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOST_CLOSE_DRAIN_S
    while transport is not None and not transport.is_closing() \
            and transport.get_write_buffer_size() and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return transport is None or not transport.get_write_buffer_size()


def _install() -> None:
    from edgelet.runtime import websocket
    websocket.direct = sys.modules[__name__]


_install()
