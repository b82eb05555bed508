"""Host side of WebSockets: the client connections, and the route of their events.

The client's connection is uvicorn's (its ``websockets`` sans-I/O implementation speaks
the protocol: framing, pings, the size limit that closes with 1009; edgelet.ws_protocol
trims what it holds per connection); this module is the
ASGI application behind it. A ``websocket`` request runs the Worker's ``fetch`` like any
request; an answer of ``101`` names, in the header ``x-edgelet-websocket``, the socket an
isolate accepted, and the host completes the upgrade on the client's connection.

After that the isolate's ``send``/``close`` arrive as channel notifications (``ws``) and
the client's messages go to the isolate as events, one at a time per socket:
``websocket`` for a socket the Worker ``accept()``-ed, ``durable_objects.websocket`` for
one a Durable Object took with ``ctx.acceptWebSocket`` (hibernatable). The host keeps
what a hibernatable socket needs to outlive its object: its route, tags, attachment (bytes
the host never unpickles) and the object's auto-response, so an evicted object is
re-created by the next message, and ``ping``-style auto-responses never wake it.

Handed-over sockets (the fast path): once the 101 is written on a real TCP connection, the
connection's descriptor is passed to the isolate that accepted the server half
(edgelet.handoff, kind ``"ws"``), which speaks the protocol itself
(edgelet.runtime.websocket_direct): no host hop per message. The host keeps a duplicate of
the descriptor and the socket's route, tags, attachment and auto-response, so the socket
outlives that process: when it exits (a crash, a reload, a config change) the hibernatable
sockets are handed to the next process of the Worker, and ``accept()``-ed ones (whose
listeners died with it) are closed with 1011. Order across the hand-over: the isolate
holds what it sends until the host, having written what it was given before (``took``),
says ``ws.go``. Sockets opened through the testing API (ASGI, no descriptor) stay on the
host path; ``EDGELET_WS_HANDOFF=0`` keeps every socket there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from edgelet.runtime.websocket import TOKEN_HEADER

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.host import Host

log = logging.getLogger("edgelet.websocket")
worker_log = logging.getLogger("edgelet.worker")

#: the largest message a client may send (Cloudflare's limit for received messages);
#: a larger one closes the socket with 1009
MAX_MESSAGE = int(os.environ.get("EDGELET_WS_MAX_MESSAGE", str(32 * 1024 * 1024)))
#: bytes of messages a socket's client may leave unread here before the next message ends
#: the connection (edgelet.runtime.websocket_direct.MAX_UNSENT says why; the same bound)
MAX_UNSENT = max(int(os.environ.get("EDGELET_WS_MAX_UNSENT", str(16 * 1024 * 1024))), 64 * 1024)
#: the ASGI scope extension of edgelet.ws_protocol: the connection, whose ``send_now`` and
#: ``send_frame_now`` write a message without a task
SEND_NOW = "edgelet.send_now"
#: seconds an accepted server half may wait for its 101 to reach a client
_UNCLAIMED_S = 60.0
#: seconds the host waits for an isolate to close a socket it serves (it waits up to
#: websocket_direct.HOST_CLOSE_DRAIN_S for its unsent bytes to leave first)
HOST_CLOSE_WAIT_S = 3.0
#: headers of a 101 answer that are the protocol's, not the Worker's, to send
#: how the host carries a socket: uvicorn's connection here, being handed to an isolate,
#: served by an isolate, or waiting for the next process after its isolate exited
HOST, HANDING, DIRECT, ORPHAN = 0, 1, 2, 3
#: ``EDGELET_WS_HANDOFF=0`` keeps every socket on the host path
HANDOFF = os.environ.get("EDGELET_WS_HANDOFF", "1") != "0"
_HOP_HEADERS = frozenset({TOKEN_HEADER, "upgrade", "connection", "sec-websocket-accept",
                          "sec-websocket-protocol", "sec-websocket-extensions",
                          "content-length", "transfer-encoding", "date", "server"})


def websocket_options() -> dict[str, Any]:
    """uvicorn's WebSocket settings: the protocol (uvicorn's sans-I/O one, trimmed), the size
    limit (1009 above it), and no per-message deflate (a zlib context per connection would
    cost more memory than an idle socket)."""
    return {"ws": _lean_protocol, "ws_max_size": MAX_MESSAGE, "ws_per_message_deflate": False}


def _lean_protocol(**kwargs: Any) -> Any:
    """uvicorn's ``ws`` setting: a factory (uvicorn only calls it) rather than the class, so
    the websockets library is imported at the first upgrade, or when ``edgelet dev`` warms it
    after Ready, instead of before ``dev`` serves anything."""
    from edgelet.ws_protocol import LeanWebSocketProtocol
    return LeanWebSocketProtocol(**kwargs)


class HostSocket:
    """One accepted server half: where its events go and what goes out to its client."""

    __slots__ = ("token", "worker", "route", "tags", "attachment", "send", "send_now", "outbox",
                 "flushing", "server_closed", "path", "created", "key", "state", "fd", "owner",
                 "took", "unsent")

    def __init__(self, token: str, worker: str, route: tuple[list[Any], str] | None,
                 tags: list[str]) -> None:
        self.token = token
        self.worker = worker
        #: [namespace, class, id, name] of the Durable Object that hibernates it, else None
        self.route = route[0] if route else None
        #: that object's ``ns/id`` in the socket table
        self.key: str | None = route[1] if route else None
        self.tags = tags
        self.attachment: bytes | None = None
        self.send: Any = None  # the client's connection (ASGI send), once upgraded
        #: the connection (edgelet.ws_protocol's scope extension): its ``send_now`` writes a
        #: message at once, or says False
        self.send_now: Any = None
        #: messages not yet handed to ``send``; made on the first one (an idle socket has none)
        self.outbox: deque[dict[str, Any]] | None = None
        #: bytes of the messages in ``outbox`` (bounded by MAX_UNSENT)
        self.unsent = 0
        self.flushing = False
        self.server_closed = False
        self.path = ""
        self.created = time.monotonic()
        #: HOST, HANDING, DIRECT or ORPHAN (see the module docstring)
        self.state = HOST
        #: the host's duplicate of the connection's descriptor, once handed to an isolate
        self.fd: int | None = None
        #: the channel of the isolate process that serves it (HANDING, DIRECT)
        self.owner: Any = None
        #: the first hand-over's answer: True once the isolate took it, False if it exited first
        self.took: asyncio.Future[bool] | None = None


class SocketTable:
    """Every accepted WebSocket of the platform, keyed by token."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.sockets: dict[str, HostSocket] = {}
        #: Durable Object (``ns/id``) -> tokens of its hibernatable sockets
        self.by_object: dict[str, set[str]] = {}
        #: Durable Object (``ns/id``) -> (request, response) answered without waking it
        self.auto: dict[str, tuple[str, str]] = {}
        #: Durable Object (``ns/id``) -> its route and key, shared by all its sockets
        self._routes: dict[str, tuple[list[Any], str]] = {}

    # -- from isolates -------------------------------------------------------------------
    def on_notify(self, worker: str, args: list[Any]) -> None:
        """``ws`` notifications: accept, send, close, attach, auto."""
        op = args[0]
        if op == "auto":
            key, pair = str(args[1]), args[2]
            if pair is None:
                self.auto.pop(key, None)
            else:
                self.auto[key] = (str(pair[0]), str(pair[1]))
            return
        if op == "sendmany":
            self._send_many(worker, args[1], args[2])
            return
        token = args[1]
        if op == "accept":
            self._accept(worker, token, args[2], args[3])
            return
        sock = self.sockets.get(token)
        if sock is None or sock.worker != worker:
            return  # closed meanwhile (or not this Worker's): nothing to do
        if op == "took":
            self._took(sock)
            return
        if op == "gone":
            self._gone(sock, int(args[2]), str(args[3] or ""))
            return
        if op == "send":
            self._send(sock, args[2])
        elif op == "close":
            if not sock.server_closed:
                sock.server_closed = True
                self._push(sock, {"type": "websocket.close", "code": int(args[2]),
                                  "reason": str(args[3] or "")})
        elif op == "attach":
            sock.attachment = args[2]
        elif op == "tags":
            sock.tags = [str(t) for t in args[2]]

    def _accept(self, worker: str, token: Any, route: Any, tags: Any) -> None:
        if not isinstance(token, str) or token in self.sockets:
            return
        self._drop_unclaimed()
        shared: tuple[list[Any], str] | None = None
        if route:  # the sockets of one object share its route and key rather than copy them
            key = f"{route[0]}/{route[2]}"
            shared = self._routes.get(key)
            if shared is None:
                shared = self._routes[key] = (list(route), key)
        sock = HostSocket(token, worker, shared, [str(t) for t in tags] if tags else [])
        self.sockets[token] = sock
        if sock.key is not None:
            self.by_object.setdefault(sock.key, set()).add(token)

    def _drop_unclaimed(self) -> None:
        """Forget server halves whose 101 never reached a client (the pair was dropped)."""
        now = time.monotonic()
        stale = [s for s in self.sockets.values()
                 if s.send is None and s.state == HOST and now - s.created > _UNCLAIMED_S]
        for sock in stale:
            self._forget(sock)

    def handle_call(self, worker: str, args: list[Any]) -> Any:
        """``list`` (the hibernatable sockets of an object, to rebuild it after eviction);
        ``objects`` (the objects of ``worker`` that have some: asked by a restarted isolate)."""
        op = args[0]
        if op == "objects":
            return sorted({s.key for s in self.sockets.values()
                           if s.key is not None and s.worker == worker and not s.server_closed})
        if op == "list":
            key = str(args[1])
            out = []
            for token in sorted(self.by_object.get(key, ())):
                sock = self.sockets[token]
                if sock.worker == worker and not sock.server_closed:
                    out.append([token, sock.tags, sock.attachment])
            return {"sockets": out, "auto": list(self.auto[key]) if key in self.auto else None}
        raise LookupError(f"unknown websocket call {op!r}")

    # -- to clients -------------------------------------------------------------------------
    def _send(self, sock: HostSocket, data: str | bytes) -> None:
        """One message to the client: written at once when nothing is queued before it."""
        if sock.send_now is not None and not sock.outbox and not sock.flushing \
                and sock.send_now.send_now(data):
            return
        self._push(sock, {"type": "websocket.send", "text": data} if isinstance(data, str)
                   else {"type": "websocket.send", "bytes": data})

    def _send_many(self, worker: str, tokens: list[str], data: str | bytes) -> None:
        """One message to many clients (``sendmany``: a broadcast, one channel message):
        framed once, the same bytes written to every connection that can take them now."""
        from edgelet.ws_protocol import server_frame
        frame: bytes | None = None
        sockets = self.sockets
        for token in tokens:
            sock = sockets.get(token)
            if sock is None or sock.worker != worker:
                continue  # closed meanwhile (or not this Worker's)
            conn = sock.send_now
            if conn is not None and not sock.outbox and not sock.flushing:
                if frame is None:
                    frame = server_frame(data)
                if conn.send_frame_now(frame):
                    continue
            self._send(sock, data)

    def _push(self, sock: HostSocket, message: dict[str, Any]) -> None:
        if sock.outbox is None:
            sock.outbox = deque()
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is not None:
            if sock.unsent >= MAX_UNSENT:
                self._overflow(sock)
                return
            sock.unsent += len(data)
        sock.outbox.append(message)
        if sock.send is not None and not sock.flushing:
            sock.flushing = True
            asyncio.ensure_future(self._flush(sock))
        elif sock.state == DIRECT and not sock.flushing:  # sent by a process that did not
            sock.flushing = True                          # know it had the socket (rare)
            asyncio.ensure_future(self._flush_fd(sock))

    async def _flush(self, sock: HostSocket) -> None:
        try:
            while sock.outbox:
                message = sock.outbox.popleft()
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                if data is not None:
                    sock.unsent -= len(data)
                await sock.send(message)
        except Exception as exc:  # the client went away: its reader reports the close
            log.debug("dropping messages to a closed WebSocket %s: %s", sock.token[:8], exc)
        finally:
            sock.outbox = None  # an idle socket holds no deque
            sock.unsent = 0
            sock.flushing = False

    def _overflow(self, sock: HostSocket) -> None:
        """The client has MAX_UNSENT bytes of messages waiting and does not read: end its
        connection rather than buffer without bound (as the isolate that serves a handed-over
        socket does, edgelet.runtime.websocket_direct.DirectSocket.overflow). Its reader then
        sees the connection drop, and the Worker's handler gets a close with 1006."""
        log.warning("WebSocket %s of Worker %r: closed, its client is not reading: %d bytes were "
                    "waiting to be sent to it (the bound is %d, EDGELET_WS_MAX_UNSENT); later "
                    "messages to it were dropped", sock.path or sock.token[:8], sock.worker,
                    sock.unsent, MAX_UNSENT)
        if sock.outbox:
            sock.outbox.clear()
        sock.unsent = 0
        transport = getattr(sock.send_now, "transport", None)
        if transport is not None:
            transport.abort()

    def _forget(self, sock: HostSocket) -> None:
        if sock.fd is not None:
            os.close(sock.fd)
            sock.fd = None
        if sock.took is not None and not sock.took.done():  # closed during its first hand-over:
            sock.took.set_result(False)                     # _hand_over must not wait forever
        self.sockets.pop(sock.token, None)
        if sock.key is not None:
            tokens = self.by_object.get(sock.key)
            if tokens is not None:
                tokens.discard(sock.token)
                if not tokens:
                    del self.by_object[sock.key]
                    self.auto.pop(sock.key, None)
                    self._routes.pop(sock.key, None)

    # -- a client's connection ------------------------------------------------------------------
    async def serve(self, scope: dict[str, Any], receive: Any, send: Any, worker: str,
                    url: str) -> None:
        """Run the Worker's fetch for the upgrade request, then carry the socket's messages.

        The handshake is a function of its own so that its locals (the request's and the
        answer's headers) are gone while the socket lives, and the scope's headers are
        dropped once the Worker has had them: an idle socket holds only what it needs."""
        sock = await self._upgrade(scope, receive, send, worker, url)
        if sock is None:
            return
        scope["headers"] = []
        if HANDOFF and await self._hand_over(sock):
            return  # the isolate serves it now; its "gone" ends it here
        code, reason = 1006, ""
        try:
            code, reason = await self._read(sock, receive)
        finally:
            self._forget(sock)
            self._announce(sock, "close", f"WebSocket closed {sock.path} ({code}"
                                          f"{': ' + reason if reason else ''})", code=code)

    async def _upgrade(self, scope: dict[str, Any], receive: Any, send: Any, worker: str,
                       url: str) -> HostSocket | None:
        """The Worker's fetch for the upgrade request; the socket it accepted, once the 101
        is sent, or None when the client got a plain HTTP answer instead."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        status, out_headers, body = await self.host.fetch(worker, "GET", url, headers, b"")
        token = next((v for k, v in out_headers if k == TOKEN_HEADER), None)
        if status != 101 or token is None:
            await deny(scope, send, status, out_headers, body)
            return None
        sock = self.sockets.get(token)
        if sock is None or sock.send is not None:
            text = (f"Worker {worker!r} answered {scope['path']} with a 101 whose WebSocket was "
                    f"never accepted (or is in use): call server.accept() or "
                    f"ctx.acceptWebSocket(server) before returning "
                    f"Response(None, status=101, web_socket=client)")
            log.warning("%s", text)
            await deny(scope, send, 500, [["content-type", "text/plain;charset=UTF-8"]],
                        text.encode())
            return None
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers
                 if k.lower() not in _HOP_HEADERS]
        protocol = next((v for k, v in out_headers if k.lower() == "sec-websocket-protocol"), None)
        if protocol is not None and protocol not in scope.get("subprotocols", ()):
            # sent as written, as Cloudflare does; the client will fail the handshake
            log.warning("Worker %r chose the WebSocket subprotocol %r for %s, which the client did "
                        "not offer (it offered %s): the client will refuse the connection; set "
                        "Sec-WebSocket-Protocol to one of the offered ones, or leave it out",
                        worker, protocol, scope["path"],
                        ", ".join(scope.get("subprotocols") or ()) or "none")
        await send({"type": "websocket.accept", "subprotocol": protocol, "headers": extra})
        sock.send = send
        sock.send_now = (scope.get("extensions") or {}).get(SEND_NOW)
        sock.path = scope["path"]
        self._announce(sock, "open", f"WebSocket open {sock.path}")
        if sock.outbox and not sock.flushing:  # what the Worker sent before returning the 101
            sock.flushing = True
            asyncio.ensure_future(self._flush(sock))
        return sock

    async def _read(self, sock: HostSocket, receive: Any) -> tuple[int, str]:
        """Deliver the client's messages one at a time; return the close code and reason."""
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if sock.key is not None:
                    auto = self.auto.get(sock.key)
                    if auto is not None and data == auto[0]:
                        self._send(sock, auto[1])
                        continue
                if not await self._deliver(sock, "message", data):
                    if not sock.server_closed:
                        sock.server_closed = True
                        self._push(sock, {"type": "websocket.close", "code": 1011,
                                          "reason": "the Worker that accepted it restarted"})
                    continue
            elif kind == "websocket.disconnect":
                code = int(message.get("code") or 1005)
                reason = str(message.get("reason") or "")
                if "reason" not in message and code == 1005:
                    code = 1006  # the connection dropped without a close frame: abnormal
                if not sock.server_closed:  # the client closed (or vanished): tell the Worker
                    await self._deliver(sock, "close", None, code, reason)
                return code, reason

    async def _deliver(self, sock: HostSocket, kind: str, data: Any, code: int | None = None,
                       reason: str | None = None) -> bool:
        payload: list[Any] = [sock.token, kind, data, code, reason]
        try:
            if sock.route is None:
                return bool(await self.host.invoke(sock.worker, "websocket", payload))
            payload.append(sock.route)
            payload.append([sock.tags, sock.attachment])
            return bool(await self.host.invoke(sock.worker, "durable_objects.websocket", payload))
        except Exception as exc:
            log.warning("Worker %r could not take a WebSocket %s event on %s: %s", sock.worker,
                        kind, sock.path, exc)
            return False

    # -- handing sockets to isolates ----------------------------------------------------------
    async def _hand_over(self, sock: HostSocket) -> bool:
        """Pass the client's connection to the isolate that accepted the server half; True
        once it serves it, False when the socket stays here (no descriptor: the testing
        API; the isolate has no handoff socket; bytes of the client's already read)."""
        conn = sock.send_now
        isolate = self.host.isolates.get(sock.worker)
        endpoint = getattr(isolate, "handoff", None)
        channel = getattr(isolate, "_channel", None)
        if conn is None or endpoint is None or endpoint.closed or channel is None or channel.closed:
            return False
        transport = conn.transport
        raw = transport.get_extra_info("socket")
        fileno = raw.fileno() if raw is not None else -1
        if fileno < 0 or transport.get_extra_info("sslcontext") is not None \
                or not conn.between_frames():
            return False  # (a TLS stream's bytes are not frames: it would stay here)
        transport.pause_reading()
        fd = os.dup(fileno)
        from edgelet.handoff import HandoffError
        try:
            endpoint.send("ws", fd, b"", self._meta(sock))
        except HandoffError as exc:
            log.debug("WebSocket %s stays in the host: %s", sock.token[:8], exc)
            os.close(fd)
            transport.resume_reading()
            return False
        sock.fd, sock.owner, sock.state = fd, channel, HANDING
        sock.took = asyncio.get_running_loop().create_future()
        if not await sock.took:  # the isolate exited before it took the socket: serve it here
            if self.sockets.get(sock.token) is not sock:  # unless the host closed it meanwhile
                return True  # (a reload, a stop): uvicorn's end of the connection goes too
            if sock.fd is not None:
                os.close(sock.fd)
            sock.fd, sock.owner, sock.state, sock.took = None, None, HOST, None
            transport.resume_reading()
            return False
        sock.took = None
        # what the isolate sent before it had the socket is queued or written: let it out
        while sock.flushing or sock.outbox or transport.get_write_buffer_size():
            if transport.is_closing():
                break
            await asyncio.sleep(0.001)
        sock.send = sock.send_now = None
        if sock.state == HANDING:
            sock.state = DIRECT
            if not channel.closed:
                channel.notify("ws.go", sock.token)
        return True  # uvicorn closes its descriptor; the isolate's and ours keep the socket

    def _meta(self, sock: HostSocket) -> dict[str, Any]:
        auto = self.auto.get(sock.key) if sock.key is not None else None
        return {"token": sock.token, "route": sock.route, "max": MAX_MESSAGE,
                "auto": list(auto) if auto else None}

    def _took(self, sock: HostSocket) -> None:
        """The isolate serves the socket and holds its sends until ``ws.go``."""
        if sock.state != HANDING:
            return
        if sock.took is not None:  # the first hand-over: _hand_over finishes it
            if not sock.took.done():
                sock.took.set_result(True)
            return
        asyncio.ensure_future(self._go_after_flush(sock))

    async def _go_after_flush(self, sock: HostSocket) -> None:
        """A socket handed again (after its isolate exited): what the new process sent
        before it had the socket is written through the host's descriptor, then ``go``."""
        while sock.flushing:
            await asyncio.sleep(0.001)
        if sock.outbox:
            sock.flushing = True
            await self._flush_fd(sock)
        if sock.state == HANDING and sock.owner is not None and not sock.owner.closed:
            sock.state = DIRECT
            sock.owner.notify("ws.go", sock.token)

    async def _flush_fd(self, sock: HostSocket) -> None:
        """Write the outbox through the host's descriptor (no isolate writes meanwhile: it
        holds its sends until ``ws.go``); a close in it ends the connection."""
        frames: list[bytes] = []
        closing = False
        try:
            from edgelet.ws_protocol import close_frame, server_frame
            while sock.outbox:
                message = sock.outbox.popleft()
                if message["type"] == "websocket.close":
                    frames.append(close_frame(int(message.get("code", 1000)),
                                              str(message.get("reason", ""))))
                    closing = True
                    break
                data = message.get("text")
                frames.append(server_frame(data if data is not None else message.get("bytes", b"")))
            if frames and sock.fd is not None:
                await self._write_fd(sock.fd, b"".join(frames))
        finally:
            sock.outbox = None
            sock.unsent = 0
            sock.flushing = False
        if closing:
            self._end(sock, 1000, "")

    @staticmethod
    async def _write_fd(fd: int, data: bytes) -> None:
        conn = socket.socket(fileno=os.dup(fd))
        try:
            conn.setblocking(False)  # it is already (the descriptions are shared)
            await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(conn, data), 10)
        except (OSError, TimeoutError) as exc:
            log.debug("could not write to a WebSocket: %s", exc)
        finally:
            conn.close()

    def _gone(self, sock: HostSocket, code: int, reason: str) -> None:
        """The isolate finished the connection (it shut it down): drop ours, log the close."""
        if sock.state == HANDING and sock.took is not None and not sock.took.done():
            sock.took.set_result(False)  # it could not take it: the host serves it
            return
        if sock.state not in (HANDING, DIRECT):
            return
        self._forget(sock)
        self._announce(sock, "close", f"WebSocket closed {sock.path} ({code}"
                                      f"{': ' + reason if reason else ''})", code=code)

    def _end(self, sock: HostSocket, code: int, reason: str) -> None:
        """End a handed-over connection from the host (its close frame already written)."""
        if sock.fd is not None:
            conn = socket.socket(fileno=os.dup(sock.fd))
            try:
                conn.shutdown(socket.SHUT_RDWR)  # whoever else still holds the descriptor
            except OSError:
                pass
            finally:
                conn.close()
        self._forget(sock)
        self._announce(sock, "close", f"WebSocket closed {sock.path} ({code}"
                                      f"{': ' + reason if reason else ''})", code=code)

    async def close_for_restart(self, reason: str, *, worker: str | None = None,
                                hibernated: bool = True) -> None:
        """Close the clients' WebSockets of ``worker`` (every Worker's when None) with 1012
        (Service Restart) and ``reason``, so a client learns at once that it must reconnect.

        ``hibernated=False`` keeps the sockets a Durable Object took with
        ``ctx.acceptWebSocket``: they outlive an isolate restart, and the new isolate's object
        gets their next message. The others live and die with the isolate that accepted them."""
        if len(reason.encode()) > 123:  # the most a close frame's reason may hold
            reason = reason.encode()[:120].decode(errors="ignore") + "..."
        for sock in list(self.sockets.values()):
            if worker is not None and sock.worker != worker:
                continue
            if not hibernated and sock.key is not None:
                continue
            if sock.fd is not None:  # served by an isolate: the host writes on its duplicate
                await self._close_fd(sock, 1012, reason)
            elif sock.send is not None:  # on the host's path (None: never reached a client)
                self.on_notify(sock.worker, ["close", sock.token, 1012, reason])

    def on_isolate_exit(self, worker: str, channel: Any) -> None:
        """A process of ``worker`` ended (crash, reload, config change, stop): its sockets
        come back to the host. Hibernatable ones go to the Worker's next process (started
        now); ``accept()``-ed ones are closed with 1011, their listeners being gone."""
        orphans = False
        for sock in list(self.sockets.values()):
            if sock.owner is not channel or channel is None:
                continue
            if sock.took is not None:  # the first hand-over: the host serves it after all
                if not sock.took.done():
                    sock.took.set_result(False)
                continue
            sock.owner, sock.state = None, ORPHAN
            if sock.route is None:
                asyncio.ensure_future(self._close_fd(
                    sock, 1011, "the Worker that accepted it restarted"))
            else:
                orphans = True
        if orphans:
            asyncio.ensure_future(self._restart_for(worker, channel))

    async def release(self, worker: str, timeout: float = 0.25) -> None:
        """Before ``worker``'s isolate is replaced by a reload: it stops reading its sockets
        at a frame boundary (and finishes the handlers running), so the next process takes
        each at the start of a frame. One still half way through a client's frame after
        ``timeout`` is closed with 1012: the rest of that frame could not be parsed."""
        if not any(s.worker == worker and s.state == DIRECT for s in self.sockets.values()):
            return
        try:
            half = await self.host.invoke(worker, "websocket.release", timeout, timeout=timeout + 2)
        except Exception as exc:  # an old or stuck isolate: the sockets are taken back as they are
            log.debug("Worker %r did not release its WebSockets: %s", worker, exc)
            return
        for token in half or ():
            sock = self.sockets.get(str(token))
            if sock is not None and sock.worker == worker and sock.fd is not None:
                await self._close_fd(sock, 1012, "the Worker was reloaded while a message was "
                                                 "arriving or being handled; reconnect")

    async def _close_fd(self, sock: HostSocket, code: int, reason: str) -> None:
        """Close a handed-over socket with a close frame, then end the connection.

        The frame is written by the side that owns the socket's writes: the isolate serving
        it (after its own unsent bytes: the host writing on its duplicate meanwhile could
        land inside one of its frames and corrupt the stream), or the host once no live
        process writes (an orphan, a hand-over that failed). An isolate that does not
        answer in time gets its connection ended without a frame from here, for the same
        reason."""
        if sock.fd is not None:
            owner = sock.owner
            if sock.state == DIRECT and owner is not None and not owner.closed:
                try:
                    done = await owner.call("websocket.close", sock.token, code, reason,
                                            timeout=HOST_CLOSE_WAIT_S)
                except Exception as exc:  # stuck or gone: end it without writing from here
                    done = False
                    log.debug("WebSocket %s: its isolate did not close it (%s)", sock.token[:8], exc)
                if not done:
                    log.info("WebSocket %s closed (%d) before all its bytes reached the client "
                             "(it was not reading, or its isolate did not answer)", sock.path, code)
            else:
                from edgelet.ws_protocol import close_frame
                await self._write_fd(sock.fd, close_frame(code, reason))
        self._end(sock, code, reason)

    async def _restart_for(self, worker: str, dead: Any) -> None:
        """Start ``worker``'s next process for the sockets its last one served; the start
        hands them over (on_isolate_start). A start that fails (a save with a syntax error)
        keeps them open: the host holds each connection, the kernel buffers the client's
        frames, and the Worker's next good start (the user's next save) takes them."""
        isolate = self.host.isolates.get(worker)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        # the supervisor first finishes with the dead process (its exit code, its log line);
        # a start before that would be forgotten by it (a reload starts the next one itself)
        while isolate is not None and getattr(isolate, "_channel", None) is dead \
                and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if isolate is None or isolate.stopped:
            await self._close_orphans(worker, 1012 if isolate else 1011,
                                      "edgelet is stopping" if isolate else "the Worker is gone")
            return
        try:
            await isolate.start()
        except Exception as exc:
            log.warning("Worker %r did not start again (%s); its WebSockets stay open and go "
                        "to its next good start", worker, str(exc).splitlines()[0],
                        extra={"worker": worker})

    def on_isolate_start(self, worker: str, channel: Any) -> None:
        """A process of ``worker`` has loaded its script: hand it the hibernatable sockets
        the last one left behind (it crashed, was reloaded, or failed to start)."""
        isolate = self.host.isolates.get(worker)
        endpoint = getattr(isolate, "handoff", None)
        from edgelet.handoff import HandoffError
        for sock in list(self.sockets.values()):
            if sock.worker != worker or sock.state != ORPHAN or sock.fd is None:
                continue
            error = "the Worker's isolate could not take it"
            if endpoint is not None and not channel.closed:
                try:
                    endpoint.send("ws", sock.fd, b"", self._meta(sock))
                    sock.owner, sock.state = channel, HANDING
                    continue
                except HandoffError as exc:
                    error = f"{error}: {exc}"[:120]
            sock.state = HOST  # not an orphan any more: one close
            asyncio.ensure_future(self._close_fd(sock, 1011, error))

    async def _close_orphans(self, worker: str, code: int, reason: str) -> None:
        for sock in list(self.sockets.values()):
            if sock.worker == worker and sock.state == ORPHAN and sock.fd is not None:
                await self._close_fd(sock, code, reason)

    async def close_handed(self, code: int = 1012, reason: str = "edgelet is stopping") -> None:
        """The platform stops: close every socket an isolate serves (a close frame, then the
        connection) with 1012, as uvicorn does for the ones it holds (see _close_fd: the
        frame comes from whoever writes on the socket)."""
        handed = [sock for sock in self.sockets.values() if sock.fd is not None]
        await asyncio.gather(*(self._close_fd(sock, code, reason) for sock in handed),
                             return_exceptions=True)

    def _announce(self, sock: HostSocket, event: str, text: str, **extra: Any) -> None:
        """A socket's open or close, in the log and ``edgelet tail``, under its Worker."""
        worker_log.info("[%s] %s", sock.worker, text)
        self.host.logbus.publish({"type": "websocket", "worker": sock.worker, "level": "info",
                                  "event": event, "path": sock.path, "socket": sock.token[:8],
                                  "message": text, **extra})


async def deny(scope: dict[str, Any], send: Any, status: int, headers: list[Any],
                body: bytes) -> None:
    """Answer an upgrade request with a plain HTTP response (the Worker did not upgrade)."""
    if status == 101:  # a 101 that names no socket cannot be completed
        status, headers = 500, [["content-type", "text/plain;charset=UTF-8"]]
        body = b"the Worker answered 101 without a WebSocket; return Response(None, status=101, web_socket=client)"
    if "websocket.http.response" in (scope.get("extensions") or {}):
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers
               if k.lower() not in ("content-length", TOKEN_HEADER)]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008 if status < 500 else 1011})
