"""WebSockets through a real `edgelet dev`: a Worker's WebSocketPair, the 101 upgrade the host
completes, binary frames, close codes, the size limit, service bindings, outbound sockets,
the log and `edgelet tail`, and ``p.websocket`` of the testing API."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from edgelet.testing import Platform

CONFIG = """
[[workers]]
name = "front"
main = "front.py"
services = [{ binding = "BACK", service = "back" }]

[[workers]]
name = "back"
main = "back.py"
"""

FRONT = '''
import asyncio
from urllib.parse import urlparse, parse_qs
from workers import WorkerEntrypoint, Response, WebSocketPair, WebSocket
import js


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        if url.path == "/echo":
            client, server = WebSocketPair()
            server.accept()
            server.send("ready")

            async def on_message(event):
                if event.data == "close me":
                    server.close(4001, "as you wish")
                else:
                    server.send(event.data)

            def on_close(event):
                print(f"echo saw close {event.code} {event.reason!r} clean={event.wasClean}")

            server.addEventListener("message", on_message)
            server.addEventListener("close", on_close)
            return Response(None, status=101, web_socket=client)
        if url.path == "/js-pair":
            pair = js.Object.values(js.WebSocketPair.new())
            client, server = pair[0], pair[1]
            server.accept()
            server.addEventListener("message", lambda e: server.send(f"js:{e.data}"))
            return js.Response.new(None, status=101, webSocket=client)
        if url.path == "/forgot":
            return Response(None, status=101)
        if url.path == "/unaccepted":
            client, server = WebSocketPair.new().object_values()
            return Response(None, status=101, web_socket=client)
        if url.path == "/via-service":
            return await self.env.BACK.fetch(request)
        if url.path == "/outbound":
            target = parse_qs(url.query)["to"][0]
            ws = WebSocket(target)
            got = asyncio.get_running_loop().create_future()
            ws.addEventListener("message", lambda e: got.done() or got.set_result(e.data))
            ws.send("hello from a Worker")
            first = await asyncio.wait_for(got, 10)
            ws.close()
            return Response(first)
        return Response("not a socket route", status=404)
'''

BACK = '''
from workers import WorkerEntrypoint, Response, WebSocketPair


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.headers.get("upgrade", "").lower() != "websocket":
            return Response("Expected WebSocket upgrade", status=426)
        client, server = WebSocketPair()
        server.accept()
        server.addEventListener("message", lambda e: server.send(f"back:{e.data}"))
        return Response(None, status=101, web_socket=client)
'''

APP = {"wrangler_like.toml": CONFIG, "front.py": FRONT, "back.py": BACK}


def ws_url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def wait_for_log(server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = server.logs()
        if text in logs:
            return logs
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log:\n{server.logs()[-3000:]}")


@pytest.fixture
def app_server(dev, monkeypatch):
    monkeypatch.setenv("EDGELET_WS_MAX_MESSAGE", "65536")
    return dev(APP)


def test_echo_text_and_binary(app_server):
    with connect(ws_url(app_server, "/echo")) as ws:
        assert ws.recv(5) == "ready"  # sent before the 101 was returned: delivered after it
        ws.send("héllo")
        assert ws.recv(5) == "héllo"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(5) == b"\x00\xffbinary"  # bytes stay bytes both ways
        for i in range(50):
            ws.send(f"m{i}")
        assert [ws.recv(5) for _ in range(50)] == [f"m{i}" for i in range(50)]  # in order


def test_close_codes_both_ways(app_server):
    with connect(ws_url(app_server, "/echo")) as ws:
        ws.recv(5)
        ws.send("close me")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(5)
        assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "as you wish"
    with connect(ws_url(app_server, "/echo")) as ws:
        ws.recv(5)
        ws.close(4002, "client leaves")
    wait_for_log(app_server, "echo saw close 4002 'client leaves' clean=True")


def test_js_forms_of_pair_and_response(app_server):
    with connect(ws_url(app_server, "/js-pair")) as ws:
        ws.send("x")
        assert ws.recv(5) == "js:x"


def test_101_without_web_socket_is_a_500_naming_the_mistake(app_server):
    with pytest.raises(InvalidStatus) as err:
        connect(ws_url(app_server, "/forgot"))
    response = err.value.response
    assert response.status_code == 500
    assert b"web_socket" in response.body and b"WebSocketPair" in response.body
    with pytest.raises(InvalidStatus) as err:
        connect(ws_url(app_server, "/unaccepted"))
    assert err.value.response.status_code == 500
    assert b"server.accept()" in err.value.response.body
    # the platform keeps serving
    with connect(ws_url(app_server, "/echo")) as ws:
        assert ws.recv(5) == "ready"


def test_a_plain_request_to_a_socket_route_is_426(app_server):
    resp = app_server.get("/echo")
    assert resp.status_code == 426
    assert "not a WebSocket upgrade" in resp.text


def test_a_message_over_the_limit_closes_with_1009(app_server):
    with connect(ws_url(app_server, "/echo"), max_size=None) as ws:
        ws.recv(5)
        ws.send(b"x" * 70000)  # the limit is 65536 (EDGELET_WS_MAX_MESSAGE)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(5)
        assert closed.value.rcvd.code == 1009
    wait_for_log(app_server, "echo saw close 1009")
    with connect(ws_url(app_server, "/echo")) as ws:  # others are unaffected
        ws.recv(5)
        ws.send(b"y" * 60000)
        assert ws.recv(5) == b"y" * 60000


def test_a_client_that_vanishes_mid_frame_is_a_close_seen_once(app_server):
    with connect(ws_url(app_server, "/echo")) as other:
        other.recv(5)
        raw = socket.create_connection(("127.0.0.1", app_server.port))
        raw.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert b" 101 " in raw.recv(4096).split(b"\r\n")[0] + b" "
        raw.sendall(b"\x81\xfe\x10\x00\x01\x02\x03\x04partial")  # a 4 KiB frame, cut short
        raw.close()
        logs = wait_for_log(app_server, "echo saw close 1006")
        time.sleep(0.3)
        assert app_server.logs().count("echo saw close 1006") == 1, logs
        other.send("still here")
        assert other.recv(5) == "still here"


def test_service_binding_passes_the_upgrade_through(app_server):
    with connect(ws_url(app_server, "/via-service")) as ws:
        ws.send("hi")
        assert ws.recv(5) == "back:hi"


def test_outbound_websocket_from_a_worker(app_server):
    target = ws_url(app_server, "/echo")
    resp = app_server.get("/outbound", params={"to": target})
    assert resp.status_code == 200, resp.text
    assert resp.text == "ready"  # the echo route's first message, read by the Worker


def test_log_and_tail_show_opens_and_closes(app_server):
    with httpx.stream("GET", f"{app_server.url}/cdn-cgi/edgelet/api/tail", timeout=10) as tail:
        lines = tail.iter_lines()
        assert json.loads(next(lines))["type"] == "hello"
        with connect(ws_url(app_server, "/echo")) as ws:
            ws.recv(5)
        seen = []
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("type") == "websocket":
                seen.append((event["worker"], event["event"], event["path"]))
                if event["event"] == "close":
                    assert event["code"] == 1000
                    break
    assert seen == [("front", "open", "/echo"), ("front", "close", "/echo")]
    logs = wait_for_log(app_server, "[front] WebSocket closed /echo (1000)")
    assert "[front] WebSocket open /echo" in logs


async def test_testing_api_opens_a_socket_without_a_port(tmp_path):
    for name, text in APP.items():
        (tmp_path / name).write_text(text)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        assert p.url is None  # no server, no port
        async with await p.websocket("/echo") as ws:
            assert await ws.receive() == "ready"
            await ws.send(b"\x01\x02")
            assert await ws.receive() == b"\x01\x02"
        back = await p.websocket("/", worker="back")
        await back.send("direct")
        assert await back.receive() == "back:direct"
        await back.close()
