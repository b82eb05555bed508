"""The Durable Object WebSocket hibernation API through a real `edgelet dev`, with the chat
room app (tests/fixtures/apps/ws-chatroom): two clients chat, tags, attachments, the
auto-response, close codes, binary frames, and hibernation (evict, message, constructor
again, attachments intact)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

APP = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "ws-chatroom"


_OPEN = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    _OPEN.close()


@pytest.fixture
def chat(dev, tmp_path, monkeypatch):
    """The chat room app; idle objects are evicted after 0.3 s so hibernation is quick to see."""
    monkeypatch.setenv("EDGELET_DO_IDLE_TIMEOUT", "0.3")
    folder = tmp_path / "app"
    shutil.copytree(APP, folder)
    return dev(None, "--in-memory", cwd=folder)


def join(server, room: str, user: str, *teams: str):
    query = f"user={user}" + "".join(f"&team={t}" for t in teams)
    ws = _OPEN.enter_context(connect(f"ws://127.0.0.1:{server.port}/room/{room}?{query}"))
    welcome = json.loads(ws.recv(5))
    assert welcome["type"] == "welcome" and welcome["user"] == user
    return ws, welcome


def recv_json(ws):
    return json.loads(ws.recv(5))


def who(ws, team=None):
    ws.send(json.dumps({"type": "who", "team": team}))
    answer = recv_json(ws)
    assert answer["type"] == "who"
    return answer


def test_the_page_loads_and_plain_requests_get_400(chat):
    page = chat.get("/")
    assert page.status_code == 200 and "<title>edgelet chat</title>" in page.text
    assert page.headers["content-type"] == "text/html"
    resp = chat.get("/room/lobby")
    assert resp.status_code == 400 and resp.text == "Expected WebSocket upgrade"


def test_two_clients_chat_through_one_object(chat):
    ann, _ = join(chat, "lobby", "ann")
    bob, _ = join(chat, "lobby", "bob")
    ann.send(json.dumps({"text": "hi bob"}))
    assert recv_json(ann) == {"type": "message", "user": "ann", "text": "hi bob"}
    assert recv_json(bob) == {"type": "message", "user": "ann", "text": "hi bob"}
    bob.send(json.dumps({"text": "hi ann"}))
    assert recv_json(ann)["text"] == "hi ann"
    assert recv_json(bob)["text"] == "hi ann"
    # a third visitor gets the history kept in storage
    cy, welcome = join(chat, "lobby", "cy")
    assert [m["text"] for m in welcome["history"]] == ["hi bob", "hi ann"]
    # another room is another object: nothing crosses over
    dee, welcome = join(chat, "other", "dee")
    assert welcome["history"] == []
    for ws in (ann, bob, cy, dee):
        ws.close()


def test_tags_filter_get_web_sockets(chat):
    ann, _ = join(chat, "tags", "ann", "red")
    bob, _ = join(chat, "tags", "bob", "blue")
    cy, _ = join(chat, "tags", "cy", "red", "blue")
    assert who(ann)["users"] == ["ann", "bob", "cy"]
    assert who(ann, "red")["users"] == ["ann", "cy"]
    assert who(ann, "blue")["users"] == ["bob", "cy"]
    assert who(cy)["tags"] == ["red", "blue"]
    for ws in (ann, bob, cy):
        ws.close()


def test_binary_frames_stay_binary(chat):
    ann, _ = join(chat, "bin", "ann")
    ann.send(b"\x01\x02\x03\xff")
    assert ann.recv(5) == b"\xff\x03\x02\x01"
    ann.close()


def test_close_codes_reach_the_object_and_the_client(chat):
    ann, _ = join(chat, "close", "ann")
    bob, _ = join(chat, "close", "bob")
    bob.close(4100, "gone fishing")
    left = recv_json(ann)
    assert left == {"type": "left", "user": "bob", "code": 4100, "reason": "gone fishing",
                    "clean": True}
    ann.send(json.dumps({"type": "leave"}))
    with pytest.raises(ConnectionClosed) as closed:
        ann.recv(5)
    assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "bye ann"


def test_hibernation_evicts_and_rebuilds_with_attachments(chat):
    ann, _ = join(chat, "hib", "ann", "red")
    bob, _ = join(chat, "hib", "bob")
    first = who(ann)
    assert first["users"] == ["ann", "bob"]
    constructed = first["constructed"]
    time.sleep(1.2)  # idle past EDGELET_DO_IDLE_TIMEOUT: the object is evicted, sockets stay
    again = who(bob)
    assert again["constructed"] == constructed + 1  # the constructor ran again
    assert again["users"] == ["ann", "bob"]  # both sockets, attachments intact
    assert who(ann, "red")["users"] == ["ann"]  # tags too
    ann.send(json.dumps({"text": "after the nap"}))
    assert recv_json(ann)["text"] == "after the nap"
    assert recv_json(bob) == {"type": "message", "user": "ann", "text": "after the nap"}
    ann.close()
    bob.close()


def test_auto_response_does_not_wake_the_object(chat):
    ann, _ = join(chat, "auto", "ann")
    constructed = who(ann)["constructed"]
    time.sleep(1.2)  # evicted
    for _ in range(3):
        ann.send("ping")
        assert ann.recv(5) == "pong"
    # still the same count: the pings never re-created the object
    assert who(ann)["constructed"] == constructed + 1  # (this message did, once)
    ann.close()


def test_auto_response_outlives_the_objects_last_socket(chat):
    """The object set its auto-response once (in its constructor); its only socket closes
    and a new one joins while the object is still in memory: still answered."""
    ann, _ = join(chat, "auto-again", "ann")
    ann.send("ping")
    assert ann.recv(5) == "pong"
    constructed = who(ann)["constructed"]
    ann.close()
    time.sleep(0.1)  # the host has dropped the socket; the object (0.3 s idle) is still there
    bob, _ = join(chat, "auto-again", "bob")
    bob.send("ping")
    assert bob.recv(5) == "pong"
    assert who(bob)["constructed"] == constructed  # the same instance all along
    bob.close()


def test_a_vanished_client_is_closed_once_and_others_keep_chatting(chat):
    import socket
    ann, _ = join(chat, "vanish", "ann")
    raw = socket.create_connection(("127.0.0.1", chat.port))
    raw.sendall(b"GET /room/vanish?user=ghost HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    time.sleep(0.5)
    raw.sendall(b"\x81\xfe\x08\x00\x01\x02\x03\x04half a frame")
    raw.close()
    left = recv_json(ann)
    assert left["type"] == "left" and left["user"] == "ghost"
    assert left["code"] == 1006 and left["clean"] is False
    ann.send(json.dumps({"text": "anyone?"}))
    assert recv_json(ann)["text"] == "anyone?"  # exactly one "left", then the chat goes on
    assert who(ann)["users"] == ["ann"]
    ann.close()
