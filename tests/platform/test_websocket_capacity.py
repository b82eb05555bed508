"""What the host's WebSocket connections cost and how they behave under load, through a real
`edgelet dev`: idle hibernated sockets stay cheap (issue 16's memory budget) and keep
working, and a client that reads slowly still gets every message, in order."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest
from websockets.asyncio.client import connect

ROOM = '''
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message.startswith("flood:"):
            for i in range(int(message[6:])):
                ws.send(f"{i:06d}:" + "x" * 65536)
            ws.send("done")
        else:
            ws.send(message)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOMS.getByName(request.url.rsplit("/", 1)[-1]).fetch(request)
'''

FILES = {
    "wrangler.toml": """
        name = "rooms"
        main = "room.py"
        durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
    """,
    "room.py": ROOM,
}

#: the host's resident growth allowed per idle hibernated socket. uvicorn's stock protocol
#: costs ~26 KB here (the legacy ``websockets`` one ~34 KB, ``wsproto`` ~21 KB); edgelet's
#: trimmed one ~16 KB, which keeps 10,000 sockets under the 300 MB budget for the tree.
PER_SOCKET_KB = 21


def host_rss(server) -> int:
    return psutil.Process(server.proc.pid).memory_info().rss


@pytest.mark.slow
def test_idle_hibernated_sockets_are_cheap_and_keep_working(dev, monkeypatch):
    monkeypatch.setenv("EDGELET_DO_IDLE_TIMEOUT", "0.5")
    server = dev(FILES, "--in-memory")
    base = f"ws://127.0.0.1:{server.port}/room"
    n = 2000

    async def run() -> None:
        first = await connect(f"{base}/warm", compression=None)
        await first.send("hi")
        assert await first.recv() == "hi"
        await asyncio.sleep(1.5)
        before = host_rss(server)
        conns = []
        for start in range(0, n, 200):
            conns += await asyncio.gather(*(connect(f"{base}/r{i % 20}", compression=None, ping_interval=None)
                                            for i in range(start, start + 200)))
        await asyncio.sleep(2.0)  # the 20 rooms are evicted; their sockets stay open
        grown_kb = (host_rss(server) - before) / n / 1024
        try:
            assert grown_kb < PER_SOCKET_KB, f"each idle socket costs the host {grown_kb:.1f} KB"
            for ws in (conns[0], conns[n // 2], conns[-1]):  # the objects come back for a message
                await ws.send("still there?")
                assert await asyncio.wait_for(ws.recv(), 10) == "still there?"
        finally:
            for start in range(0, n, 500):
                await asyncio.gather(*(ws.close() for ws in conns[start:start + 500]))
            await first.close()

    asyncio.run(run())


def test_a_slow_reader_gets_every_message_in_order(dev):
    """200 messages of 64 KiB to a client that reads nothing for a second: the host's writes
    wait for the socket to drain (flow control) and nothing is lost or reordered."""
    server = dev(FILES, "--in-memory")

    async def run() -> None:
        async with connect(f"ws://127.0.0.1:{server.port}/room/flood", compression=None,
                           max_queue=1, max_size=None) as ws:
            await ws.send("flood:200")
            time.sleep(1.0)  # block the client's loop: nothing is read, buffers fill up
            for i in range(200):
                got = await asyncio.wait_for(ws.recv(), 20)
                assert got.startswith(f"{i:06d}:") and len(got) == 7 + 65536
            assert await asyncio.wait_for(ws.recv(), 20) == "done"
            await ws.send("after the flood")
            assert await asyncio.wait_for(ws.recv(), 20) == "after the flood"

    asyncio.run(run())
