"""Hibernatable sockets the isolate serves, across the edits a developer makes: a save with a
syntax error (the sockets wait for the fix), and a save while a slow handler still holds
messages (the client is told with 1012 rather than losing them silently)."""
from __future__ import annotations

import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

CONFIG = '''
name = "hand"
main = "hand.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
'''
HAND = '''
import asyncio
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint
VERSION = 1
DELAY = 0.0
class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)
    async def webSocketMessage(self, ws, message):
        if DELAY:
            await asyncio.sleep(DELAY)
        ws.send(f"v{VERSION}:{message}")
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOMS.getByName("one").fetch(request)
'''


def test_a_broken_save_keeps_the_sockets_for_the_fix(dev: Any) -> None:
    server = dev({"wrangler_like.toml": CONFIG, "hand.py": HAND}, "--in-memory")
    script = server.cwd / "hand.py"
    with connect(f"ws://127.0.0.1:{server.port}/r") as ws:
        ws.send("a")
        assert ws.recv(10) == "v1:a"
        script.write_text(HAND + "\ndef broken(:\n")
        server.wait_for_log("failed to load", 20)
        ws.send("b")  # nobody serves it yet: the kernel holds it for the next good start
        script.write_text(HAND.replace("VERSION = 1", "VERSION = 2"))
        assert ws.recv(20) == "v2:b"
        ws.send("c")
        assert ws.recv(10) == "v2:c"
    assert "stay open and go to its next good start" in server.logs()


def test_a_save_while_a_handler_runs_closes_with_1012_not_silence(dev: Any) -> None:
    server = dev({"wrangler_like.toml": CONFIG,
                  "hand.py": HAND.replace("DELAY = 0.0", "DELAY = 1.5")}, "--in-memory")
    with connect(f"ws://127.0.0.1:{server.port}/r") as ws:
        for m in ("a", "b", "c"):
            ws.send(m)
        time.sleep(0.3)  # the isolate has read a, b, c; a's handler sleeps
        (server.cwd / "hand.py").write_text(HAND.replace("VERSION = 1", "VERSION = 2"))
        got: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                got.append(str(ws.recv(20)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
        assert "being handled" in closed.value.rcvd.reason
        assert len(got) < 3  # what was answered before the reload, never a silent gap
