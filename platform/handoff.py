"""Handing connections between the host and an isolate: one descriptor per message.

Why: an isolate that serves its own Worker's connections (HTTP keep-alive, WebSockets)
answers without the host in the middle of every request; the host still accepts each
connection, decides who owns it, and takes back the ones the isolate cannot serve
(``/cdn-cgi/``, another Worker, an upgrade). Each isolate gets a Unix ``SOCK_SEQPACKET``
socket pair for this next to its channel socket (edgelet.supervisor, the fork server),
so a message is one packet: never split, never joined with the next.

A message carries exactly one descriptor (SCM_RIGHTS), a ``kind`` string naming what it
is for (``"http"``, ``"ws"``, ...), the bytes already read from the connection, and a small
metadata dict; the receiver calls the callback registered for its kind with a
``socket.socket`` that owns the received descriptor. Both directions are the same.

Stable API (other features build on it; change it only in a commit that says so):

    here, there = socketpair()            # the host keeps ``here``, the isolate gets ``there``
    end = Endpoint(here)                  # one per side, in a running event loop
    end.on("http", callback)              # callback(conn: socket.socket, data: bytes, meta: dict)
    end.on_close = lambda: ...            # the other side closed its end (it exited)
    end.start()                           # read messages from now on
    end.send("http", conn, data, meta)    # conn: a socket or an fd; the sender keeps its own
    end.close()

The sender keeps its descriptor: sending passes a duplicate (the kernel's), so the sender
closes its own copy when it no longer wants it (the host keeps one to answer for a dead
isolate). ``send`` never blocks: a full socket buffer queues the message until it drains.
A received message whose kind has no callback has its descriptor closed and is logged.
The isolate half is edgelet.runtime.handoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack

log = logging.getLogger("edgelet.handoff")

#: the largest ``data`` a message may carry: a request line and header block
#: (edgelet.http_protocol.MAX_HEADER_BYTES) with room for what came with it; a packet of a
#: SOCK_SEQPACKET socket must fit its send buffer whole
MAX_DATA = 128 * 1024
#: the send buffer asked for (the kernel may cap it at net.core.wmem_max)
_SNDBUF = 1024 * 1024
#: the largest packet read (data + kind + metadata)
_RECV_SIZE = MAX_DATA + 16 * 1024
#: the environment variable that names the isolate's end in the isolate process
ENV_FD = "EDGELET_HANDOFF_FD"
#: "0" keeps every HTTP connection on the host; anything else (the default) hands plain HTTP
#: connections to their Worker's isolate (edgelet.http_handoff). Kept here, in the light
#: module, so the fork server can ask without importing the HTTP path.
HTTP_SWITCH = "EDGELET_HTTP_HANDOFF"


def http_enabled() -> bool:
    """Whether isolates serve their own Worker's HTTP connections (on unless set to "0")."""
    return os.environ.get(HTTP_SWITCH, "1") != "0"

Callback = Callable[[socket.socket, bytes, dict[str, Any]], None]


class HandoffError(ConnectionError):
    """A connection could not be handed over (the other side is gone, or the message is too
    large); the sender still owns the connection and serves or closes it itself."""


def socketpair() -> tuple[socket.socket, socket.socket]:
    """A new pair: the host's end and the isolate's end (inheritable, for the child)."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (here, there):
        try:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        except OSError:
            pass
    return here, there


class Endpoint:
    """One side of a handoff socket pair, served by the running event loop."""

    def __init__(self, sock: socket.socket, handlers: dict[str, Callback] | None = None) -> None:
        self.sock = sock
        sock.setblocking(False)
        #: kind -> callback; a dict may be shared with whoever registers kinds later
        self.handlers: dict[str, Callback] = handlers if handlers is not None else {}
        #: called once when the other side's end closes (its process exited)
        self.on_close: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[bytes, int]] = deque()
        self._writing = False
        self._closed = False
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def on(self, kind: str, callback: Callback) -> None:
        """Call ``callback(conn, data, meta)`` for each message of ``kind``."""
        self.handlers[kind] = callback

    def start(self) -> None:
        """Read messages in the running loop from now on."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    # -- sending ----------------------------------------------------------------------------
    def send(self, kind: str, conn: socket.socket | int, data: bytes = b"",
             meta: dict[str, Any] | None = None) -> None:
        """Hand ``conn`` (a duplicate of it) to the other side with ``data`` and ``meta``.

        Raises HandoffError when the other side is gone or ``data`` is over MAX_DATA."""
        if self._closed:
            raise HandoffError("the other side of the handoff socket is gone")
        if len(data) > MAX_DATA:
            raise HandoffError(f"{len(data)} bytes already read is over the {MAX_DATA} a handoff carries")
        fd = conn if isinstance(conn, int) else conn.fileno()
        packet = self._packer.pack([kind, data, meta or {}])
        if self._queue:  # keep the order: behind what waits already
            self._queue.append((packet, os.dup(fd)))
            return
        try:
            socket.send_fds(self.sock, [packet], [fd])
        except BlockingIOError:
            self._queue.append((packet, os.dup(fd)))
            self._wait_writable()
        except OSError as exc:
            self._lost()
            raise HandoffError(f"the other side of the handoff socket is gone ({exc})") from None

    def _wait_writable(self) -> None:
        if not self._writing:
            loop = self._loop or asyncio.get_running_loop()
            loop.add_writer(self.sock.fileno(), self._drain)
            self._writing = True

    def _drain(self) -> None:
        while self._queue:
            packet, fd = self._queue[0]
            try:
                socket.send_fds(self.sock, [packet], [fd])
            except BlockingIOError:
                return
            except OSError:
                self._lost()
                return
            self._queue.popleft()
            os.close(fd)
        if self._writing and self._loop is not None:
            self._loop.remove_writer(self.sock.fileno())
            self._writing = False

    # -- receiving --------------------------------------------------------------------------
    def _readable(self) -> None:
        while not self._closed:
            try:
                packet, fds, flags, _ = socket.recv_fds(self.sock, _RECV_SIZE, 4,
                                                         socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            if not packet and not fds:
                self._lost()
                return
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for fd in fds:
                    os.close(fd)
                log.error("a handoff message was cut short (flags %#x); its connection is closed", flags)
                continue
            self._dispatch(packet, fds)

    def _dispatch(self, packet: bytes, fds: list[int]) -> None:
        try:
            kind, data, meta = msgpack.unpackb(packet, raw=False)
        except Exception as exc:
            for fd in fds:
                os.close(fd)
            log.error("an unreadable handoff message (%r); its connection is closed", exc)
            return
        for extra in fds[1:]:  # one descriptor per message: anything more is not ours to keep
            os.close(extra)
        if not fds:
            log.error("a handoff message of kind %r came without a descriptor", kind)
            return
        conn = socket.socket(fileno=fds[0])
        callback = self.handlers.get(kind)
        if callback is None:
            log.error("no handler for handed-over connections of kind %r; closing it", kind)
            conn.close()
            return
        try:
            callback(conn, data, meta)
        except Exception:
            log.exception("the %r handoff callback failed; closing its connection", kind)
            conn.close()

    # -- the end ----------------------------------------------------------------------------
    def _lost(self) -> None:
        if self._closed:
            return
        self.close()
        if self.on_close is not None:
            try:
                self.on_close()
            except Exception:
                log.exception("the handoff close callback failed")

    def close(self) -> None:
        """Stop reading and close our end; queued messages are dropped (their copies closed)."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
                if self._writing:
                    self._loop.remove_writer(self.sock.fileno())
            except Exception:  # the loop is closing
                pass
        self._writing = False
        while self._queue:
            os.close(self._queue.popleft()[1])
        self.sock.close()
