"""WebSocket routes of ASGI apps (FastAPI ``@app.websocket``, Starlette ``WebSocketRoute``)
served by ``workers.asgi`` over the platform's WebSocketPair/101 machinery: a real
`edgelet dev` driven by the ``websockets`` client, and ``edgelet.testing.Platform``."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from edgelet.testing import Platform

pytest.importorskip("fastapi")

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    vars = { GREETING = "hi" }
"""

APP = '''
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from workers import Response, WorkerEntrypoint
    import asgi

    app = FastAPI()
    EVENTS = []

    @app.get("/")
    async def root():
        return {"ok": True}

    @app.get("/events")
    async def events():
        return EVENTS

    @app.websocket("/ws/{room}")
    async def echo(websocket: WebSocket, room: str):
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                if message.get("bytes") is not None:
                    await websocket.send_bytes(message["bytes"][::-1])
                elif message["text"] == "env":
                    await websocket.send_text(websocket.scope["env"].GREETING)
                elif message["text"] == "bye":
                    await websocket.close(4001, "bye to you")
                    return
                else:
                    await websocket.send_text(f"{room}: {message['text']}")
        except WebSocketDisconnect as exc:
            EVENTS.append({"disconnect": exc.code})

    @app.websocket("/refuse")
    async def refuse(websocket: WebSocket):
        await websocket.close()

    @app.websocket("/json")
    async def json_echo(websocket: WebSocket):
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data, "path": websocket.url.path})

    async def starlette_ws(websocket):
        await websocket.accept()
        await websocket.send_text("from starlette " + websocket.query_params.get("q", ""))
        # returning leaves the socket to be closed with 1000

    inner = Starlette(routes=[WebSocketRoute("/s", starlette_ws)])

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.split("?")[0].endswith("/s"):
                return await asgi.fetch(inner, request, self.env)
            return await asgi.fetch(app, request, self.env)
'''


def test_fastapi_websocket_echo_under_edgelet_dev(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": APP})
    ws_url = s.url.replace("http://", "ws://")
    with connect(ws_url + "/ws/lobby") as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "lobby: hello"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x03\x02\x01"  # binary stays binary
        ws.send("env")
        assert ws.recv(timeout=10) == "hi"  # the Worker's env is in the scope
    # the client's close reached the app as websocket.disconnect with its code
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not s.get("/events").json():
        time.sleep(0.1)
    assert s.get("/events").json() == [{"disconnect": 1000}]

    # the app's close code and reason reach the client
    with connect(ws_url + "/ws/x") as ws:
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "bye to you"

    # an app that closes before accepting refuses the upgrade (403), as uvicorn does
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url + "/refuse")
    assert refused.value.response.status_code == 403

    # Starlette's WebSocketRoute; returning without close ends the socket with 1000
    with connect(ws_url + "/s?q=yes") as ws:
        assert ws.recv(timeout=10) == "from starlette yes"
        with pytest.raises(ConnectionClosed) as ended:
            ws.recv(timeout=10)
    assert ended.value.rcvd.code == 1000
    assert s.get("/").json() == {"ok": True}  # plain routes of the same app still work


async def test_fastapi_websocket_through_testing_platform(tmp_path: Path):
    for rel, text in {"wrangler_like.toml": TOML, "worker.py": APP}.items():
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        async with await p.websocket("/json") as ws:
            await ws.send(json.dumps({"n": 1}))
            assert await ws.receive_json() == {"got": {"n": 1}, "path": "/json"}
        async with await p.websocket("/ws/t") as ws:
            for i in range(20):
                await ws.send(f"m{i}")
            assert [await ws.receive() for _ in range(20)] == [f"t: m{i}" for i in range(20)]
