"""How long a Durable Object with WebSockets lives, through a real `edgelet dev`:

- a socket taken with plain ``server.accept()`` (not hibernatable) pins its object in memory
  while it is open (Cloudflare: "WebSocket connections pin your Durable Object to memory");
  once it closes the object may be evicted again;
- after the isolate is SIGKILLed, a fresh instance sees the hibernatable sockets the host
  kept open in ``getWebSockets()`` from its first event (an HTTP request, not only a socket
  message), and the clients' closes reach its ``webSocketClose``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

CONFIG = """
name = "life"
main = "life.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

LIFE = '''
import json
import os
from urllib.parse import urlparse
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint

CONSTRUCTED = {"n": 0}


class Room(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED["n"] += 1
        self.sessions = []  # accept()-ed sockets, in memory only

    async def fetch(self, request):
        path = urlparse(request.url).path
        if path.endswith("/plain"):
            client, server = WebSocketPair()
            server.accept()
            self.sessions.append(server)
            server.addEventListener("message", lambda e: server.send(f"{e.data}:{len(self.sessions)}"))
            server.addEventListener("close", lambda e: self.sessions.remove(server))
            return Response(None, status=101, web_socket=client)
        if path.endswith("/hib"):
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server, ["t"])
            return Response(None, status=101, web_socket=client)
        if path.endswith("/closed"):
            return Response(json.dumps(await self.ctx.storage.get("closed")))
        return Response(json.dumps({
            "sessions": len(self.sessions), "constructed": CONSTRUCTED["n"], "pid": os.getpid(),
            "hibernatable": len(self.ctx.getWebSockets()), "tagged": len(self.ctx.getWebSockets("t")),
        }))

    async def webSocketMessage(self, ws, message):
        ws.send(f"echo:{message}")

    async def webSocketClose(self, ws, code, reason, clean):
        # the closing socket's tags are still there in its close handler (workerd drops a
        # hibernatable socket once its close event has run)
        await self.ctx.storage.put("closed", [code, reason, self.ctx.getTags(ws)])


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = urlparse(request.url).path.split("/")[2]
        return await self.env.ROOMS.getByName(name).fetch(request)
'''

_OPEN = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    _OPEN.close()


@pytest.fixture
def life(dev, monkeypatch):
    """Idle objects are evicted after 0.3 s, so whether one stays is quick to see."""
    monkeypatch.setenv("EDGELET_DO_IDLE_TIMEOUT", "0.3")
    return dev({"wrangler_like.toml": CONFIG, "life.py": LIFE}, "--in-memory")


def open_socket(server, path: str):
    return _OPEN.enter_context(connect(f"ws://127.0.0.1:{server.port}{path}"))


def state(server, room: str) -> dict:
    answer = server.get(f"/room/{room}/state")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_accepted_socket_keeps_its_object_in_memory_until_it_closes(life):
    ws = open_socket(life, "/room/pinned/plain")
    ws.send("hi")
    assert ws.recv(5) == "hi:1"
    before = state(life, "pinned")
    assert before["sessions"] == 1
    time.sleep(1.2)  # four idle timeouts: a pinned object must not have been evicted
    after = state(life, "pinned")
    assert after["constructed"] == before["constructed"], "the object was evicted under an open socket"
    assert after["sessions"] == 1  # the same instance, its in-memory list intact
    ws.send("still")
    assert ws.recv(5) == "still:1"
    ws.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # closed: the object is an idle one like any other
        time.sleep(0.5)
        now = state(life, "pinned")
        if now["constructed"] > after["constructed"]:
            break
    assert now["constructed"] > after["constructed"], "the object stayed pinned after its socket closed"
    assert now["sessions"] == 0


def test_a_restarted_isolate_sees_the_hibernated_sockets_and_their_closes(life):
    ann = open_socket(life, "/room/crash/hib")
    bob = open_socket(life, "/room/crash/hib")
    first = state(life, "crash")
    assert first["hibernatable"] == 2
    os.kill(first["pid"], signal.SIGKILL)  # the isolate crashes; the host keeps the sockets
    deadline = time.monotonic() + 10
    while True:
        try:
            again = state(life, "crash")
            break
        except AssertionError:  # the request that found the isolate dead
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert again["pid"] != first["pid"]
    # a fresh instance, first event an HTTP request: it sees both sockets, tags intact
    assert again["hibernatable"] == 2 and again["tagged"] == 2
    ann.close(4005, "bye from ann")
    deadline = time.monotonic() + 10
    while life.get("/room/crash/closed").json() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert life.get("/room/crash/closed").json() == [4005, "bye from ann", ["t"]]
    assert state(life, "crash")["hibernatable"] == 1
    bob.send("there?")
    assert bob.recv(5) == "echo:there?"
    with pytest.raises(ConnectionClosed):
        ann.recv(1)
