"""The isolate half of handed-over WebSockets (edgelet.runtime.websocket_direct), against a
plain socket pair: one end is "the client's connection" the host would hand over, the other
is a client speaking the protocol through ``websockets``' sans-I/O client side.

What a user would notice: messages both ways in order, bytes staying bytes, nothing written
before the host says ``go`` (order across the hand-over), close codes and reasons both ways,
1009 for a message over the limit, a client vanishing mid-frame seen once as 1006, and an
auto-response answered without running the handler. The fast path for complete frames must
not change any of it: the same stream of frames, cut into reads of any size, gives the same
messages (and pongs) in the same order.
"""

from __future__ import annotations

import asyncio
import socket
import types
from typing import Any

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import CLIENT, OPEN, Protocol

from edgelet.runtime import websocket as ws_mod
from edgelet.runtime.websocket import WebSocket


class _Channel:
    closed = False

    def __init__(self) -> None:
        self.notes: list[tuple[Any, ...]] = []

    def notify(self, method: str, *args: Any) -> None:
        self.notes.append((method, *args))


class Client:
    """The client end: sends masked frames, reads the server's events."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.proto = Protocol(CLIENT, state=OPEN, max_size=None)
        self.events: list[Frame] = []

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.proto.send_text(data.encode())
        else:
            self.proto.send_binary(data)
        self._write()

    def close(self, code: int, reason: str) -> None:
        self.proto.send_close(code, reason)
        self._write()

    def _write(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                try:
                    self.sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):  # the server is gone first
                    pass

    async def next(self, timeout: float = 5.0) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.events:
            if loop.time() > deadline:
                raise TimeoutError("nothing from the server")
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if not data:
                self.proto.receive_eof()
            else:
                self.proto.receive_data(data)
            self.events.extend(self.proto.events_received())
            self._write()
            if not data and not self.events:
                raise ConnectionError("the server closed the connection")
        return self.events.pop(0)


@pytest.fixture
async def env(monkeypatch):
    """A fake isolate runtime (the module's notifications land in ``channel.notes``)."""
    from edgelet.runtime import isolate as isolate_mod
    from edgelet.runtime import websocket_direct as direct
    channel = _Channel()
    runtime = types.SimpleNamespace(channel=channel, _loop=asyncio.get_running_loop())
    monkeypatch.setattr(isolate_mod.Runtime, "current", runtime, raising=False)
    yield types.SimpleNamespace(channel=channel, direct=direct)
    for sock in list(direct.connections.values()):
        sock.shutdown()
    direct.connections.clear()
    direct.auto.clear()
    direct._keys.clear()
    direct.forget_frame()
    ws_mod._sockets.clear()


def accepted(token: str, events: list[Any], reply: bool = True) -> WebSocket:
    """An ``accept()``-ed server half whose listeners record and echo."""
    server = WebSocket(token, server=True)
    server.mode = "accept"
    server.readyState = ws_mod.OPEN
    ws_mod._sockets[token] = server

    def on_message(event: Any) -> None:
        events.append(("message", event.data))
        if reply:
            server.send(event.data)

    server.addEventListener("message", on_message)
    server.addEventListener("close", lambda e: events.append(("close", e.code, e.reason)))
    return server


async def adopt(env: Any, token: str, route: Any = None, max_size: int | None = 1 << 20,
                data: bytes = b"", go: bool = True, auto: Any = None) -> Client:
    here, there = socket.socketpair()
    there.setblocking(False)
    env.direct.adopt(here, data, {"token": token, "route": route, "max": max_size, "auto": auto})
    for _ in range(100):
        if ("ws", "took", token) in env.channel.notes:
            break
        await asyncio.sleep(0.01)
    assert ("ws", "took", token) in env.channel.notes
    if go:
        env.direct.on_go(token)
    return Client(there)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_messages_both_ways_in_order_and_bytes_stay_bytes(env):
    events: list[Any] = []
    accepted("t1", events)
    client = await adopt(env, "t1")
    client.send("héllo")
    client.send(b"\x00\xff")
    for i in range(20):
        client.send(f"m{i}")
    got = [await client.next() for _ in range(22)]
    assert got[0].opcode is Opcode.TEXT and got[0].data == "héllo".encode()
    assert got[1].opcode is Opcode.BINARY and got[1].data == b"\x00\xff"
    assert [f.data.decode() for f in got[2:]] == [f"m{i}" for i in range(20)]
    assert events[0] == ("message", "héllo") and events[1] == ("message", b"\x00\xff")


async def test_nothing_is_written_before_the_host_says_go(env):
    events: list[Any] = []
    server = accepted("t2", events)
    client = await adopt(env, "t2", go=False)
    server.send("first")
    ws_mod.flush_sends()
    client.send("ping?")
    await wait_for(lambda: events)
    with pytest.raises(TimeoutError):
        await client.next(timeout=0.2)  # held: the host may still be writing older ones
    env.direct.on_go("t2")
    assert (await client.next()).data == b"first"
    assert (await client.next()).data == b"ping?"


async def test_close_codes_and_reasons_both_ways(env):
    events: list[Any] = []
    server = accepted("t3", events)
    client = await adopt(env, "t3")
    server.close(4001, "as you wish")
    frame = await client.next()
    assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data) == Close(4001, "as you wish")
    await wait_for(lambda: any(n[:2] == ("ws", "gone") for n in env.channel.notes))
    assert ("ws", "gone", "t3", 4001, "as you wish") in env.channel.notes
    assert not any(e[0] == "close" for e in events)  # the Worker closed it: no close event

    events2: list[Any] = []
    accepted("t4", events2)
    client2 = await adopt(env, "t4")
    client2.close(4002, "client leaves")
    frame = await client2.next()
    assert Close.parse(frame.data) == Close(4002, "client leaves")  # echoed
    await wait_for(lambda: ("close", 4002, "client leaves") in events2)
    await wait_for(lambda: ("ws", "gone", "t4", 4002, "client leaves") in env.channel.notes)


async def test_a_message_over_the_limit_closes_with_1009(env):
    events: list[Any] = []
    accepted("t5", events)
    client = await adopt(env, "t5", max_size=1000)
    client.send(b"x" * 2000)
    frame = await client.next()
    assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data).code == 1009
    await wait_for(lambda: any(e[0] == "close" for e in events))
    assert events == [("close", 1009, events[0][2])]


async def test_a_client_vanishing_mid_frame_is_one_1006(env):
    events: list[Any] = []
    accepted("t6", events)
    client = await adopt(env, "t6")
    client.sock.sendall(b"\x81\xfe\x10\x00\x01\x02\x03\x04partial")  # 4 KiB frame, cut short
    client.sock.close()
    await wait_for(lambda: ("ws", "gone", "t6", 1006, "") in env.channel.notes)
    await asyncio.sleep(0.1)
    assert events == [("close", 1006, "")]


async def test_an_auto_response_is_answered_without_the_handler(env):
    client = await adopt(env, "t7", route=["NS", "Room", "ab" * 32, "r"], auto=["ping", "pong"])
    client.send("ping")
    frame = await client.next()
    assert frame.data == b"pong"  # no Durable Object runs in this test: nothing else could answer


async def test_the_first_bytes_the_host_read_are_parsed_first(env):
    events: list[Any] = []
    accepted("t8", events)
    early = Protocol(CLIENT, state=OPEN)
    early.send_text(b"early")
    client = await adopt(env, "t8", data=b"".join(early.data_to_send()))
    assert (await client.next()).data == b"early"


async def test_release_stops_at_a_frame_boundary_and_names_the_half_read(env):
    events: list[Any] = []
    accepted("t9", events)
    accepted("t10", events)
    whole = await adopt(env, "t9")
    half = await adopt(env, "t10")
    half.sock.sendall(b"\x81\xfe\x10\x00\x01\x02\x03\x04partial")  # a 4 KiB frame, cut short
    await asyncio.sleep(0.05)
    assert await env.direct.release(0.2) == ["t10"]
    whole.send("after the release")  # not read: the next process reads it
    await asyncio.sleep(0.1)
    assert not any(e[0] == "message" for e in events)
    assert env.direct.connections["t9"].between_frames()


def client_frames(*items: Any) -> bytes:
    """The bytes a client sends for ``items``: str (text), bytes (binary), ("ping", data),
    ("parts", [str, ...]) for a fragmented text message."""
    proto = Protocol(CLIENT, state=OPEN, max_size=None)
    for item in items:
        if isinstance(item, str):
            proto.send_text(item.encode())
        elif isinstance(item, bytes):
            proto.send_binary(item)
        elif item[0] == "ping":
            proto.send_ping(item[1])
        else:
            parts = item[1]
            proto.send_text(parts[0].encode(), fin=False)
            for i, part in enumerate(parts[1:], 2):
                proto.send_continuation(part.encode(), fin=i == len(parts))
    return b"".join(proto.data_to_send())


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
async def test_any_cut_of_the_stream_gives_the_same_messages(env, chunk):
    """Lengths on each side of the 7-bit/16-bit/64-bit header forms, multi-byte UTF-8, a
    ping and a fragmented message between them, read in pieces of ``chunk`` bytes."""
    big: list[Any] = [b"\x00" * 65535, "z" * 70000] if chunk >= 100 else []  # (byte by byte: slow)
    messages: list[Any] = ["a", "x" * 125, "y" * 126, "é" * 300, *big,
                           b"", ("ping", b"hb"), ("parts", ["frag", "men", "ted"]), "after"]
    events: list[Any] = []
    accepted(f"cut{chunk}", events, reply=False)
    client = await adopt(env, f"cut{chunk}")
    stream = client_frames(*messages)
    loop = asyncio.get_running_loop()
    for start in range(0, len(stream), chunk):
        await loop.sock_sendall(client.sock, stream[start:start + chunk])
        if chunk < 100:
            await asyncio.sleep(0)  # let the reads interleave with the parsing
    want = [m for m in messages if not isinstance(m, tuple)]
    want.insert(len(want) - 1, "fragmented")
    await wait_for(lambda: len(events) == len(want), timeout=20)
    assert [e[1] for e in events] == want
    pong = await client.next()
    assert pong.opcode is Opcode.PONG and pong.data == b"hb"
    assert env.direct.connections[f"cut{chunk}"].between_frames()


async def test_bad_utf8_in_a_complete_frame_closes_with_1007_after_the_good_ones(env):
    events: list[Any] = []
    accepted("u1", events, reply=False)
    client = await adopt(env, "u1")
    good = client_frames("fine")
    bad = bytearray(client_frames("ab"))
    bad[-2:] = bytes(b ^ m for b, m in zip(b"\xc3\x28", bad[2:4], strict=True))  # masked invalid UTF-8
    await asyncio.get_running_loop().sock_sendall(client.sock, good + bytes(bad) + client_frames("never"))
    frame = await client.next()
    assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data).code == 1007
    await wait_for(lambda: len(events) == 2)
    assert events[0] == ("message", "fine") and events[1][:2] == ("close", 1007)


async def test_messages_before_one_over_the_limit_arrive_then_1009(env):
    events: list[Any] = []
    accepted("l1", events, reply=False)
    client = await adopt(env, "l1", max_size=1000)
    await asyncio.get_running_loop().sock_sendall(client.sock, client_frames("small", "x" * 1000, b"y" * 1001,
                                                                             "never"))
    frame = await client.next()
    assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data).code == 1009
    await wait_for(lambda: len(events) == 3)
    assert events[:2] == [("message", "small"), ("message", "x" * 1000)]
    assert events[2][:2] == ("close", 1009)


async def test_a_broadcast_is_framed_once_and_every_socket_gets_it(env, monkeypatch):
    servers = []
    clients = []
    for i in range(5):
        servers.append(accepted(f"b{i}", [], reply=False))
        clients.append(await adopt(env, f"b{i}"))
    framed: list[Any] = []
    real_frame = env.direct.frame
    monkeypatch.setattr(env.direct, "frame", lambda data: framed.append(data) or real_frame(data))
    message = "to everyone " * 20
    for server in servers:
        server.send(message)
    ws_mod.flush_sends()  # the end of the event
    servers[0].send(message)  # a later event frames it again (nothing is kept past an event)
    assert len(framed) == 2
    for client in clients:
        frame = await client.next()
        assert frame.opcode is Opcode.TEXT and frame.data == message.encode()
    assert (await clients[0].next()).data == message.encode()


async def test_an_objects_auto_response_goes_with_its_last_socket_here(env):
    route = ["NS", "Room", "cd" * 32, "r"]
    key = f"NS/{'cd' * 32}"
    first = await adopt(env, "a1", route=route, auto=["ping", "pong"])
    second = await adopt(env, "a2", route=route, auto=["ping", "pong"])
    first.sock.close()
    await wait_for(lambda: ("ws", "gone", "a1", 1006, "") in env.channel.notes)
    second.send("ping")  # the object still has a socket here: still answered here
    assert (await second.next()).data == b"pong"
    second.sock.close()
    await wait_for(lambda: ("ws", "gone", "a2", 1006, "") in env.channel.notes)
    assert key not in env.direct.auto and key not in env.direct._keys
    env.direct.set_auto(key, ("ping", "pong"))  # an object with no socket here: the host's
    assert key not in env.direct.auto
    third = await adopt(env, "a3", route=route, auto=["ping", "pong"])  # handed over again
    third.send("ping")
    assert (await third.next()).data == b"pong"


async def test_a_client_that_does_not_read_its_echoes_is_not_read_either(env):
    """Backpressure: a client sending fast and never reading makes the server's writes back
    up; the server must then stop reading that client (its buffer stays bounded, the
    kernel and TCP hold the client back) and, once the client reads, carry on in order."""
    events: list[Any] = []
    accepted("bp", events)
    client = await adopt(env, "bp")
    payload = "x" * 32 * 1024
    proto = Protocol(CLIENT, state=OPEN, max_size=None)
    pending = b""
    sent = 0
    loop = asyncio.get_running_loop()
    stalled_since: float | None = None
    while sent < 2000:  # 64 MB if nothing held it back
        if not pending:
            proto.send_text(f"{sent:05d}{payload}".encode())
            pending = b"".join(proto.data_to_send())
            sent += 1
        try:
            pending = pending[client.sock.send(pending):]
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = loop.time()
            elif loop.time() - stalled_since > 0.5:
                break  # the server stopped reading us
            await asyncio.sleep(0.01)
    assert sent < 2000, "the server kept reading a client that read nothing"
    sock = env.direct.connections["bp"]
    buffered = sock.transport.get_write_buffer_size()
    assert sock.write_blocked and buffered < 4 * 1024 * 1024, buffered
    handled = len(events)
    # the client reads now: every message it got through is answered, in order
    received = 0
    reader = Protocol(CLIENT, state=OPEN, max_size=None)
    deadline = loop.time() + 30
    while received < handled and loop.time() < deadline:
        if pending:
            try:
                pending = pending[client.sock.send(pending):]
            except BlockingIOError:
                pass
        try:
            data = client.sock.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        reader.receive_data(data)
        for frame in reader.events_received():
            assert frame.data[:5].decode() == f"{received:05d}"
            received += 1
    assert received >= handled
    await wait_for(lambda: not sock.write_blocked)
