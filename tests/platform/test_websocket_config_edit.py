"""Open WebSockets across a wrangler config edit (and a script edit) under `edgelet dev` (the dev loop restarts the
Workers an edit touches; docs/websockets.md, docs/dev.md).

What a user should expect, from SPEC 8 and docs/websockets.md: hibernated sockets (taken by a
Durable Object with ``ctx.acceptWebSocket``) outlive the object's isolate, because the host
holds them; so an edit that restarts every Worker's isolate keeps them open, and the next
message reaches a fresh instance of the same class, with its attachment and tags, and the
edited config. A socket taken with plain ``server.accept()`` lived in the isolate that was
replaced: its client is told at once, with 1012 (Service Restart) and a reason, not left
hanging. An edit
that changes bindings restarts the whole platform; the sockets open then are closed with a
code and a reason that say why (docs: "A config change that replaces the whole platform
closes them"), never left open to a stopped platform: a message on such a socket used to
revive the old platform's isolate, which answered nothing.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

CONFIG = """
[[workers]]
name = "chat"
main = "chat.py"
compatibility_date = "2026-04-01"
vars = {{ EDITION = "{edition}" }}
durable_objects.bindings = [{{ name = "ROOMS", class_name = "Room" }}]
{extra}

[[workers]]
name = "other"
main = "other.py"
compatibility_date = "2026-04-01"
vars = {{ EDITION = "{edition}" }}
"""

CHAT = '''
import os
from urllib.parse import urlparse
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        user = urlparse(request.url).path.rsplit("/", 1)[-1]
        if urlparse(request.url).path.startswith("/plain/"):
            server.accept()  # not hibernatable: lives in this isolate only
            server.addEventListener("message", lambda e: server.send(f"plain {e.data}"))
        else:
            self.ctx.acceptWebSocket(server, [user])
            server.serializeAttachment({"user": user})
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        who = ws.deserializeAttachment()["user"]
        tags = self.ctx.getTags(ws)
        ws.send(f"{who} {tags} {self.env.EDITION} sockets={len(self.ctx.getWebSockets())} pid={os.getpid()}")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.headers.get("upgrade", "").lower() != "websocket":
            return Response(f"chat {self.env.EDITION}")
        return await self.env.ROOMS.getByName("lobby").fetch(request)
'''

OTHER = '''
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"other {self.env.EDITION}")
'''


def _config(edition: str, extra: str = "") -> str:
    return CONFIG.format(edition=edition, extra=extra)


def _until(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _ask(ws, text: str) -> str:
    ws.send(text)
    return ws.recv(timeout=15)


@pytest.fixture
def server(dev):
    return dev({"wrangler_like.toml": _config("one"), "chat.py": CHAT, "other.py": OTHER}, "--in-memory")


def test_hibernated_sockets_survive_an_edit_that_restarts_every_worker(server):
    url = f"ws://127.0.0.1:{server.port}"
    with contextlib.ExitStack() as stack:
        ann = stack.enter_context(connect(f"{url}/room/ann"))
        bob = stack.enter_context(connect(f"{url}/room/bob"))
        plain = stack.enter_context(connect(f"{url}/plain/cy"))
        before = _ask(ann, "hi")
        assert before.startswith("ann ['ann'] one sockets=2 pid=")
        assert _ask(plain, "hi") == "plain hi"

        # every Worker's vars change: both isolates restart, the platform does not
        (server.cwd / "wrangler_like.toml").write_text(_config("two"))
        assert _until(lambda: server.get("/", headers={"host": "other.localhost"}).text == "other two"), \
            server.logs()[-3000:]
        assert _until(lambda: server.get("/").text == "chat two"), server.logs()[-3000:]
        assert "restarting chat, other" in server.logs()

        # the hibernated sockets are still open; a fresh instance (the new isolate) gets the
        # message, with attachment, tags and the edited vars
        after = _ask(bob, "still there?")
        assert after.startswith("bob ['bob'] two sockets=2 pid="), after
        assert after.rsplit("pid=", 1)[1] != before.rsplit("pid=", 1)[1]
        assert _ask(ann, "and me?").startswith("ann ['ann'] two sockets=2")

        # the accept()-ed socket lived in the replaced isolate: its client, even one that
        # only listens, is told at once (1012 Service Restart) and why
        with pytest.raises(ConnectionClosed) as closed:
            plain.recv(timeout=10)
        assert closed.value.rcvd is not None, "closed without a close frame"
        assert closed.value.rcvd.code == 1012, closed.value.rcvd
        assert closed.value.rcvd.reason == "Worker 'chat' was restarted (its config changed); reconnect"
    assert "Traceback" not in server.logs(), server.logs()[-3000:]


def test_an_edit_that_replaces_the_platform_closes_sockets_saying_why(server):
    url = f"ws://127.0.0.1:{server.port}"
    with contextlib.ExitStack() as stack:
        ann = stack.enter_context(connect(f"{url}/room/ann"))
        assert _ask(ann, "hi").startswith("ann ['ann'] one")

        # a new binding: the plug-ins read the config once, so the whole platform restarts
        (server.cwd / "wrangler_like.toml").write_text(
            _config("two", extra='kv_namespaces = [{ binding = "KV", id = "kv" }]'))
        assert _until(lambda: server.get("/").text == "chat two"), server.logs()[-3000:]
        assert "restarting all Workers" in server.logs()

        # the socket is closed with a code and a reason that say what happened
        with pytest.raises(ConnectionClosed) as closed:
            _ask(ann, "still there?")
        assert closed.value.rcvd is not None, "closed without a close frame"
        assert closed.value.rcvd.code == 1012, closed.value.rcvd
        assert closed.value.rcvd.reason == ("edgelet dev restarted all Workers (the bindings or crons "
                                            "of chat changed); reconnect")

        # and a new socket works on the new platform
        with connect(f"{url}/room/bob") as bob:
            assert _ask(bob, "hi").startswith("bob ['bob'] two sockets=1")
    # nothing ran the old platform's code after it stopped (a message used to revive its isolate)
    assert "Traceback" not in server.logs(), server.logs()[-3000:]


def test_a_script_edit_keeps_hibernated_sockets_and_closes_the_others_saying_why(server):
    url = f"ws://127.0.0.1:{server.port}"
    with contextlib.ExitStack() as stack:
        ann = stack.enter_context(connect(f"{url}/room/ann"))
        plain = stack.enter_context(connect(f"{url}/plain/cy"))
        assert _ask(ann, "hi").startswith("ann ['ann'] one")
        (server.cwd / "chat.py").write_text(CHAT.replace('ws.send(f"{who}', 'ws.send(f"v2 {who}'))
        with pytest.raises(ConnectionClosed) as closed:
            plain.recv(timeout=15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value.rcvd
        assert closed.value.rcvd.reason == "Worker 'chat' was reloaded (its code changed); reconnect"
        assert _ask(ann, "still there?").startswith("v2 ann ['ann'] one sockets=1")
    assert "Traceback" not in server.logs(), server.logs()[-3000:]
