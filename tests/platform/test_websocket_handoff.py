"""WebSockets handed to the isolate that accepted them, through a real `edgelet dev`:

- once upgraded, the client's TCP connection is held by the Worker's isolate process (the
  host keeps only a duplicate), and messages, attachments and tags work as before;
- a code reload replaces the isolate: the hibernatable sockets stay open and the new process
  serves them (same client connection, attachment and tags intact);
- a SIGKILLed isolate: its ``accept()``-ed socket (whose listeners died with it) is closed
  with 1011 and a reason saying why, while a hibernatable one keeps working;
- a save with a syntax error keeps the hibernatable sockets for the fix, and a save while a
  slow handler still holds messages closes with 1012 rather than losing them silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from typing import Any

import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

CONFIG = """
name = "hand"
main = "hand.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

HAND = '''
import json
import os
from urllib.parse import urlparse
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint

VERSION = 1


class Room(DurableObject):
    async def fetch(self, request):
        path = urlparse(request.url).path
        client, server = WebSocketPair()
        if path.endswith("/plain"):
            server.accept()
            server.addEventListener("message", lambda e: server.send(f"plain:{e.data}"))
        else:
            self.ctx.acceptWebSocket(server, ["team"])
            server.serializeAttachment({"user": path.rsplit("/", 1)[-1]})
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        ws.send(json.dumps({"v": VERSION, "pid": os.getpid(), "msg": message,
                            "user": ws.deserializeAttachment()["user"],
                            "tagged": len(self.ctx.getWebSockets("team"))}))


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.ROOMS.getByName("one").fetch(request)
'''

_OPEN = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    _OPEN.close()


@pytest.fixture
def hand(dev):
    return dev({"wrangler_like.toml": CONFIG, "hand.py": HAND}, "--in-memory")


def open_socket(server, path: str):
    return _OPEN.enter_context(connect(f"ws://127.0.0.1:{server.port}{path}"))


def ask(ws, text: str) -> dict:
    ws.send(text)
    return json.loads(ws.recv(10))


def holders(ws) -> set[int]:
    """Pids of the processes holding the server end of ``ws``'s TCP connection."""
    port = ws.socket.getsockname()[1]
    found = set()
    for proc in psutil.process_iter():
        try:
            if any(c.raddr and c.raddr.port == port for c in proc.net_connections("tcp")):
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def test_the_isolate_holds_the_connection_and_serves_it(hand):
    ws = open_socket(hand, "/room/ann")
    answer = ask(ws, "hi")
    assert answer["msg"] == "hi" and answer["user"] == "ann" and answer["tagged"] == 1
    assert answer["pid"] in holders(ws)  # the isolate, not only the host, has the socket
    assert hand.proc.pid in holders(ws)  # and the host its duplicate
    for i in range(20):
        ws.send(f"m{i}")
    assert [json.loads(ws.recv(10))["msg"] for _ in range(20)] == [f"m{i}" for i in range(20)]


def test_a_reload_hands_the_sockets_to_the_new_isolate(hand):
    ann = open_socket(hand, "/room/ann")
    bob = open_socket(hand, "/room/bob")
    first = ask(ann, "before")
    assert first["v"] == 1 and first["tagged"] == 2
    script = hand.cwd / "hand.py"
    script.write_text(HAND.replace("VERSION = 1", "VERSION = 2"))
    deadline = time.monotonic() + 20
    while "Reloaded Worker 'hand'" not in hand.logs():
        assert time.monotonic() < deadline, hand.logs()[-2000:]
        time.sleep(0.1)
    after = ask(ann, "after")
    assert after["v"] == 2 and after["pid"] != first["pid"]  # the new code, a new process
    assert after["user"] == "ann" and after["tagged"] == 2  # attachment and tags kept
    assert after["pid"] in holders(ann)  # the new isolate serves the same connection
    assert ask(bob, "me too")["user"] == "bob"


def test_a_killed_isolate_closes_accepted_sockets_with_1011(hand):
    plain = open_socket(hand, "/room/x/plain")
    plain.send("a")
    assert plain.recv(10) == "plain:a"
    hib = open_socket(hand, "/room/keep")
    pid = ask(hib, "x")["pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ConnectionClosed) as closed:
        plain.recv(10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "restarted" in closed.value.rcvd.reason
    again = ask(hib, "still here?")  # the hibernatable one went to the next process
    assert again["pid"] != pid and again["user"] == "keep"


def test_a_reload_while_a_frame_is_half_sent_closes_that_socket_with_1012(hand):
    import socket
    ann = open_socket(hand, "/room/ann")
    ask(ann, "hi")
    raw = socket.create_connection(("127.0.0.1", hand.port))
    raw.sendall(b"GET /room/half HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert b" 101 " in raw.recv(4096).split(b"\r\n")[0] + b" "
    time.sleep(0.3)  # handed to the isolate
    raw.sendall(b"\x81\xfe\x10\x00\x01\x02\x03\x04partial")  # a 4 KiB frame, cut short
    time.sleep(0.2)
    (hand.cwd / "hand.py").write_text(HAND.replace("VERSION = 1", "VERSION = 3"))
    raw.settimeout(20)
    got = b""
    while b"\x88" not in got:  # the close frame
        chunk = raw.recv(4096)
        assert chunk, f"closed without a close frame: {got!r}"
        got += chunk
    frame = got[got.index(b"\x88"):]
    assert int.from_bytes(frame[2:4], "big") == 1012 and b"reloaded" in frame
    assert ask(ann, "and me?")["v"] == 3  # the socket between frames went to the new process
    raw.close()


def test_stopping_dev_closes_handed_sockets_with_1012(hand):
    ws = open_socket(hand, "/room/ann")
    ask(ws, "hi")
    hand.stop()  # Ctrl-C
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


# -- edits a developer makes while sockets are open (the Worker from EDITED_HAND) ----------
EDITED_HAND = '''
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
    server = dev({"wrangler_like.toml": CONFIG, "hand.py": EDITED_HAND}, "--in-memory")
    script = server.cwd / "hand.py"
    with connect(f"ws://127.0.0.1:{server.port}/r") as ws:
        ws.send("a")
        assert ws.recv(10) == "v1:a"
        script.write_text(EDITED_HAND + "\ndef broken(:\n")
        server.wait_for_log("failed to load", 20)
        ws.send("b")  # nobody serves it yet: the kernel holds it for the next good start
        script.write_text(EDITED_HAND.replace("VERSION = 1", "VERSION = 2"))
        assert ws.recv(20) == "v2:b"
        ws.send("c")
        assert ws.recv(10) == "v2:c"
    assert "stay open and go to its next good start" in server.logs()


def test_a_save_while_a_handler_runs_closes_with_1012_not_silence(dev: Any) -> None:
    server = dev({"wrangler_like.toml": CONFIG,
                  "hand.py": EDITED_HAND.replace("DELAY = 0.0", "DELAY = 1.5")}, "--in-memory")
    with connect(f"ws://127.0.0.1:{server.port}/r") as ws:
        for m in ("a", "b", "c"):
            ws.send(m)
        time.sleep(0.3)  # the isolate has read a, b, c; a's handler sleeps
        (server.cwd / "hand.py").write_text(EDITED_HAND.replace("VERSION = 1", "VERSION = 2"))
        got: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                got.append(str(ws.recv(20)))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
        assert "being handled" in closed.value.rcvd.reason
        assert len(got) < 3  # what was answered before the reload, never a silent gap


# -- a close from the host while the isolate is still writing ----------------------------------
BIG_HAND = '''
from workers import Response, WebSocketPair, WorkerEntrypoint
VERSION = 1
BIG = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than the kernel's buffers hold
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        client, server = WebSocketPair()
        server.accept()
        server.addEventListener("message", lambda e: server.send(BIG))
        return Response(None, status=101, web_socket=client)
'''


def _read_exactly(raw: Any, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = raw.recv(min(n - len(got), 1 << 20))
        assert chunk, f"the connection ended after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


def _read_frame(raw: Any) -> tuple[int, bytes]:
    """One unmasked server frame from a raw socket: (opcode byte, payload)."""
    head = _read_exactly(raw, 2)
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(_read_exactly(raw, 2), "big")
    elif n == 127:
        n = int.from_bytes(_read_exactly(raw, 8), "big")
    return head[0], _read_exactly(raw, n)


def test_a_close_from_the_host_never_lands_inside_a_frame_the_isolate_is_writing(dev: Any) -> None:
    """The client does not read while the isolate writes a 16 MiB message (most of it still
    in the isolate's buffers) and a reload closes the socket: the close frame must follow the
    message, not cut into it."""
    import socket
    s = dev({"wrangler_like.toml": 'name = "big"\nmain = "big.py"\ncompatibility_date = "2026-04-01"\n',
             "big.py": BIG_HAND}, "--in-memory")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # keep the rest server-side
    raw.connect(("127.0.0.1", s.port))
    raw.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        response += raw.recv(1)
    assert b" 101 " in response.split(b"\r\n")[0] + b" ", response
    time.sleep(0.3)  # handed to the isolate
    raw.sendall(b"\x81\x82\x01\x02\x03\x04" + bytes((ord("g") ^ 1, ord("o") ^ 2)))  # "go", masked
    time.sleep(0.5)  # the message is being written; the client reads nothing yet
    (s.cwd / "big.py").write_text(BIG_HAND.replace("VERSION = 1", "VERSION = 2"))
    deadline = time.monotonic() + 20
    while "changed: reloading" not in s.logs():
        assert time.monotonic() < deadline, s.logs()[-2000:]
        time.sleep(0.02)
    time.sleep(0.3)  # the host closes the socket now (the old isolate serves it)
    raw.settimeout(20)
    op, payload = _read_frame(raw)
    assert op == 0x82 and len(payload) == 16 * 1024 * 1024, (hex(op), len(payload))
    assert payload == bytes(range(256)) * (64 * 1024), "the message arrived corrupted"
    op, payload = _read_frame(raw)
    assert op == 0x88 and int.from_bytes(payload[:2], "big") == 1012, (hex(op), payload[:60])
    raw.close()
