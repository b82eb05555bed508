"""A Durable Object's broadcast loop, through a real `edgelet dev`: the same message sent to
many sockets leaves the isolate once and the host frames it once (edgelet.websockets
``sendmany``); every client must still get every message, in order, text as text and bytes
as bytes, interleaved correctly with messages sent to one socket, and a socket that closed
is skipped without disturbing the others."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

CONFIG = """
name = "cast"
main = "cast.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

CAST = '''
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        n = int(message)
        for i in range(n):
            text = f"t{i}"
            blob = text.encode()
            for other in self.ctx.getWebSockets():
                other.send(text)
            for other in self.ctx.getWebSockets():
                other.send(blob)
            ws.send(f"only-you-{i}")
        for other in self.ctx.getWebSockets():
            other.send("end")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOMS.getByName("all").fetch(request)
'''


def test_broadcasts_reach_every_socket_in_order(dev):
    server = dev({"wrangler_like.toml": CONFIG, "cast.py": CAST}, "--in-memory")
    url = f"ws://127.0.0.1:{server.port}/"

    async def main() -> None:
        clients = [await connect(url, compression=None, max_queue=None) for _ in range(30)]
        gone = clients.pop()
        await gone.close()
        await asyncio.sleep(0.3)  # its close has reached the object
        sender = clients[0]
        await sender.send("40")

        async def read_all(ws):
            got = []
            while True:
                message = await asyncio.wait_for(ws.recv(), 20)
                if message == "end":
                    return got
                got.append(message)

        results = await asyncio.gather(*(read_all(ws) for ws in clients))
        expected = [m for i in range(40) for m in (f"t{i}", f"t{i}".encode())]
        with_own = [m for i in range(40) for m in (f"t{i}", f"t{i}".encode(), f"only-you-{i}")]
        assert results[0] == with_own
        for got in results[1:]:
            assert got == expected
        await asyncio.gather(*(ws.close() for ws in clients))

    asyncio.run(main())
