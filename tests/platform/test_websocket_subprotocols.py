"""WebSocket subprotocol negotiation (issue 14's leftover, issue 16): the protocol a Worker,
a Durable Object or an ASGI app picks reaches the client's 101.

Cloudflare's rule (workers-sdk issue 1767, Miniflare's ``handleProtocols: () => false``):
the runtime negotiates nothing itself; the Worker answers
``Response(None, status=101, web_socket=client, headers={"Sec-WebSocket-Protocol": p})``
and the header is sent as written. A protocol the client did not offer is sent too, and the
client fails the handshake (RFC 6455 4.1); ``edgelet dev`` also logs why.

A real ``edgelet dev`` driven by the ``websockets`` client, and the testing API's
``p.websocket(..., protocols=[...])``.
"""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import connect

from edgelet.testing import Platform

pytest.importorskip("fastapi")

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

APP = '''
    from fastapi import FastAPI, WebSocket
    from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint
    import asgi

    SUPPORTED = ["chat.v2", "chat"]

    def pick(request):
        offered = [p.strip() for p in (request.headers.get("sec-websocket-protocol") or "").split(",")]
        return next((p for p in offered if p in SUPPORTED), None)

    api = FastAPI()

    @api.websocket("/asgi")
    async def asgi_pick(websocket: WebSocket):
        offered = websocket.scope["subprotocols"]
        chosen = next((p for p in offered if p in SUPPORTED), None)
        await websocket.accept(subprotocol=chosen)
        await websocket.send_text(f"asgi offered={','.join(offered)} chose={chosen}")
        await websocket.receive_text()

    class Room(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair()
            self.ctx.acceptWebSocket(server)
            chosen = pick(request)
            headers = {"Sec-WebSocket-Protocol": chosen} if chosen else {}
            return Response(None, status=101, web_socket=client, headers=headers)

        async def webSocketMessage(self, ws, message):
            ws.send(f"room: {message}")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("?")[0].rsplit("/", 1)[-1]
            if path == "asgi":
                return await asgi.fetch(api, request, self.env)
            if path == "room":
                return await self.env.ROOMS.getByName("lobby").fetch(request)
            client, server = WebSocketPair()
            server.accept()
            server.addEventListener("message", lambda event: server.send(f"echo: {event.data}"))
            chosen = "mqtt" if path == "stray" else pick(request)
            headers = {"Sec-WebSocket-Protocol": chosen} if chosen else {}
            return Response(None, status=101, web_socket=client, headers=headers)
'''


@pytest.fixture(scope="module")
def server(shared_dev):
    return shared_dev({"wrangler_like.toml": TOML, "worker.py": APP})


def ws(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def test_a_worker_picks_one_of_the_offered_protocols(server):
    with connect(ws(server, "/plain"), subprotocols=["v1.other", "chat", "chat.v2"]) as sock:
        assert sock.subprotocol == "chat"  # the Worker's choice, not the client's first
        sock.send("hi")
        assert sock.recv(timeout=10) == "echo: hi"


def test_no_protocol_picked_opens_without_one(server):
    with connect(ws(server, "/plain"), subprotocols=["v1.other"]) as sock:
        assert sock.subprotocol is None
        sock.send("hi")
        assert sock.recv(timeout=10) == "echo: hi"
    with connect(ws(server, "/plain")) as sock:  # none offered, none chosen
        assert sock.subprotocol is None


def test_a_durable_object_picks_through_the_stub(server):
    with connect(ws(server, "/room"), subprotocols=["chat.v2"]) as sock:
        assert sock.subprotocol == "chat.v2"
        sock.send("hi")
        assert sock.recv(timeout=10) == "room: hi"


def test_an_asgi_app_picks_with_accept_subprotocol(server):
    with connect(ws(server, "/asgi"), subprotocols=["v1.other", "chat.v2"]) as sock:
        assert sock.subprotocol == "chat.v2"
        assert sock.recv(timeout=10) == "asgi offered=v1.other,chat.v2 chose=chat.v2"
    with connect(ws(server, "/asgi"), subprotocols=["v1.other"]) as sock:
        assert sock.subprotocol is None
        assert sock.recv(timeout=10) == "asgi offered=v1.other chose=None"


def test_a_protocol_the_client_did_not_offer_fails_its_handshake_and_is_logged(server):
    # As on Cloudflare, the Worker's header is sent as written; the client refuses it.
    with pytest.raises(InvalidHandshake):
        connect(ws(server, "/stray"), subprotocols=["chat"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "mqtt" not in server.logs():
        time.sleep(0.1)
    line = next(line for line in server.logs().splitlines() if "mqtt" in line)
    assert "/stray" in line and "did not offer" in line and "chat" in line


async def test_testing_api_sees_the_chosen_protocol(tmp_path):
    import textwrap
    (tmp_path / "wrangler_like.toml").write_text(textwrap.dedent(TOML))
    (tmp_path / "worker.py").write_text(textwrap.dedent(APP))
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        sock = await p.websocket("/plain", protocols=["chat"])
        assert sock.subprotocol == "chat"
        await sock.close()
        sock = await p.websocket("/asgi", protocols=["chat.v2"])
        assert sock.subprotocol == "chat.v2"
        await sock.close()
