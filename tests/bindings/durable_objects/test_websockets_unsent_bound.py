"""A client that never reads, in a room that keeps broadcasting, through a real `edgelet dev`:
what waits to be sent to it is bounded (EDGELET_WS_MAX_UNSENT), so the platform's memory does
not grow with every broadcast; once over the bound that socket alone is ended (its object's
``webSocketClose`` sees 1006, not clean, and the log says why), and the clients that read get
every message, in order. Both the isolate that serves handed-over sockets and the host's own
path (EDGELET_WS_HANDOFF=0) are checked."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect

CONFIG = """
name = "slow"
main = "slow.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

ROOM = '''
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint

BLOB = bytes(range(256)) * 1024  # 256 KiB


class Room(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.closes = []

    async def fetch(self, request):
        if request.headers.get("upgrade") != "websocket":
            return Response.json(self.closes)
        client, server = WebSocketPair()
        server.serializeAttachment(request.url.rsplit("=", 1)[-1])
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        for k in range(4):  # 1 MiB to every socket of the room, new bytes each time
            blob = BLOB + message.encode() + bytes([k])
            for other in self.ctx.getWebSockets():
                other.send(blob)
        for other in self.ctx.getWebSockets():
            other.send(message)

    async def webSocketClose(self, ws, code, reason, was_clean):
        self.closes.append([ws.deserializeAttachment(), code, reason, was_clean])


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOMS.getByName("room").fetch(request)
'''

BOUND = 2 * 1024 * 1024  # more than one burst: a client that reads is never over it
BURSTS = 60  # 60 MiB to each socket: far past the bound and the kernel's buffers


def _tree_rss(pid: int) -> int:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in procs)


def _stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    raw.connect(("127.0.0.1", port))
    raw.sendall(b"GET /?who=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0] + b" ", head
    return raw


@pytest.mark.parametrize("handoff", ["1", "0"], ids=["isolate-serves-it", "host-serves-it"])
def test_a_client_that_never_reads_is_cut_off_and_the_others_get_everything(
        dev: Any, monkeypatch: pytest.MonkeyPatch, handoff: str) -> None:
    monkeypatch.setenv("EDGELET_WS_MAX_UNSENT", str(BOUND))
    monkeypatch.setenv("EDGELET_WS_HANDOFF", handoff)
    server = dev({"wrangler_like.toml": CONFIG, "slow.py": ROOM}, "--in-memory")
    base = f"ws://127.0.0.1:{server.port}"
    assert server.proc is not None

    async def main() -> float:
        readers = [await connect(f"{base}/?who=r{i}", compression=None, max_queue=None,
                                 max_size=None) for i in range(2)]
        stalled = _stalled_client(server.port)
        await asyncio.sleep(0.3)  # every socket accepted (and handed over)
        before = _tree_rss(server.proc.pid)
        peak = before
        for n in range(BURSTS):
            await readers[0].send(f"end{n}")
            for ws in readers:
                got = [await asyncio.wait_for(ws.recv(), 30) for _ in range(5)]
                blob = bytes(range(256)) * 1024 + f"end{n}".encode()
                assert got[:4] == [blob + bytes([k]) for k in range(4)], f"burst {n}: blobs differ"
                assert got[4] == f"end{n}", f"burst {n}: {got[4]!r} out of order"
            peak = max(peak, _tree_rss(server.proc.pid))
        for ws in readers:
            await ws.close()
        stalled.close()
        return (peak - before) / 1e6

    grew_mb = asyncio.run(main())
    # 60 MiB were sent to the client that did not read: unbounded, the platform holds most of it
    assert grew_mb < 25, f"the platform grew by {grew_mb:.0f} MB while a client did not read"
    deadline = time.monotonic() + 10
    while True:
        closes = json.loads(server.get("/").text)
        slow = [c for c in closes if c[0] == "slow"]
        if slow or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert slow and slow[0][1] == 1006 and slow[0][3] is False, closes
    assert "its client is not reading" in server.wait_for_log("its client is not reading")
