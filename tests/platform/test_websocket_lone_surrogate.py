"""Text with a lone surrogate sent over a WebSocket by a Worker (a bad ``\\ud800`` from JSON,
bytes decoded with ``surrogateescape``) leaves as UTF-8 with U+FFFD in its place, as a JS
string with a lone surrogate does on Cloudflare (workerd encodes WebSocket text as UTF-8,
replacing lone surrogates); the socket and the channel carry on.

Both ways a Worker's socket is served: one it ``accept()``-s (its isolate writes the frames)
and a Durable Object's hibernatable one (the host writes them), with a send to one socket
and a broadcast to several.
"""

from __future__ import annotations

from typing import Any

from websockets.sync.client import connect

CONFIG = """
name = "sur"
main = "sur.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

APP = '''
from urllib.parse import urlparse
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint

BAD = "a\\ud800b"            # a lone surrogate
PAIR = "\\ud83d\\ude00"      # two halves that make one character, as JS would join them


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message == "all":
            for other in self.ctx.getWebSockets():
                other.send(BAD)
        else:
            ws.send(BAD)
            ws.send(PAIR)
        ws.send("still here")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path.startswith("/room/"):
            return await self.env.ROOMS.getByName(path.split("/")[2]).fetch(request)
        client, server = WebSocketPair()
        server.accept()

        def on_message(event):
            server.send(BAD)
            server.send(PAIR)
            server.send("still here")

        server.addEventListener("message", on_message)
        return Response(None, status=101, web_socket=client)
'''


def _talk(url: str) -> list[Any]:
    with connect(url, open_timeout=10) as ws:
        ws.send("hi")
        got = [ws.recv(timeout=10) for _ in range(3)]
        ws.send("again")  # the socket still works
        got += [ws.recv(timeout=10) for _ in range(3)]
        return got


def test_a_lone_surrogate_in_sent_text_becomes_u_fffd_and_nothing_breaks(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "sur.py": APP})
    ws_url = s.url.replace("http", "ws", 1)
    want = ["a\ufffdb", "\U0001f600", "still here"] * 2
    assert _talk(ws_url + "/plain") == want, s.logs()[-3000:]
    assert _talk(ws_url + "/room/r1") == want
    with connect(ws_url + "/room/r2", open_timeout=10) as one, \
            connect(ws_url + "/room/r2", open_timeout=10) as two:
        one.send("all")
        assert [two.recv(timeout=10), one.recv(timeout=10), one.recv(timeout=10)] == \
            ["a\ufffdb", "a\ufffdb", "still here"]
    assert s.get("/room/r1/x").status_code in (101, 400, 426)  # the platform still answers
