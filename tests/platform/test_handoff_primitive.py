"""The handoff primitive (edgelet.handoff, edgelet.runtime.handoff): a TCP connection passed
between host and isolate with the bytes already read and a metadata dict, both ways,
dispatched by kind; and every isolate, forked or a fresh interpreter, gets its socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import write_app

from edgelet.handoff import MAX_DATA, Endpoint, HandoffError, socketpair
from edgelet.testing import Platform


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A real TCP connection on loopback: (client, server side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


async def test_a_connection_crosses_both_ways_with_its_bytes_and_metadata() -> None:
    here, there = socketpair()
    host, isolate = Endpoint(here), Endpoint(there)
    got: asyncio.Queue[tuple[str, socket.socket, bytes, dict[str, Any]]] = asyncio.Queue()
    isolate.on("http", lambda conn, data, meta: got.put_nowait(("http", conn, data, meta)))
    host.on("http.back", lambda conn, data, meta: got.put_nowait(("back", conn, data, meta)))
    host.start()
    isolate.start()
    client, server = tcp_pair()
    try:
        host.send("http", server, b"GET / HTTP/1.1\r\n\r\n", {"id": 7, "slot": 3})
        server.close()  # the sender's copy: the receiver holds its own
        kind, conn, data, meta = await asyncio.wait_for(got.get(), 5)
        assert (kind, data, meta) == ("http", b"GET / HTTP/1.1\r\n\r\n", {"id": 7, "slot": 3})
        conn.sendall(b"from the isolate")
        assert client.recv(100) == b"from the isolate"
        isolate.send("http.back", conn, b"GET /cdn-cgi/x HTTP/1.1\r\n\r\n", {"id": 7})
        conn.close()
        kind, back, data, meta = await asyncio.wait_for(got.get(), 5)
        assert (kind, data, meta) == ("back", b"GET /cdn-cgi/x HTTP/1.1\r\n\r\n", {"id": 7})
        back.sendall(b"from the host")
        assert client.recv(100) == b"from the host"
        back.close()
        assert client.recv(100) == b""  # the last copy closed: the client sees the end
    finally:
        client.close()
        host.close()
        isolate.close()


async def test_unknown_kind_closes_the_connection_and_oversized_data_is_refused() -> None:
    here, there = socketpair()
    host, isolate = Endpoint(here), Endpoint(there)
    closed = asyncio.Event()
    host.on_close = closed.set
    host.start()
    isolate.start()
    client, server = tcp_pair()
    try:
        with pytest.raises(HandoffError, match="over the"):
            host.send("http", server, b"x" * (MAX_DATA + 1))
        host.send("nobody-listens", server)
        server.close()
        client.settimeout(5)
        assert await asyncio.to_thread(client.recv, 10) == b""  # closed by the receiver
        isolate.close()  # the isolate exits: the host is told, and sending says so
        await asyncio.wait_for(closed.wait(), 5)
        with pytest.raises(HandoffError, match="gone"):
            host.send("http", client)
    finally:
        client.close()
        host.close()


async def test_many_messages_keep_their_order() -> None:
    here, there = socketpair()
    host, isolate = Endpoint(here), Endpoint(there)
    seen: list[int] = []
    done = asyncio.Event()

    def take(conn: socket.socket, data: bytes, meta: dict[str, Any]) -> None:
        seen.append(meta["n"])
        conn.close()
        if len(seen) == 300:
            done.set()

    isolate.on("k", take)
    host.start()
    isolate.start()
    client, server = tcp_pair()
    try:
        for n in range(300):  # ~30 MB in flight: the socket fills and the queue takes over
            host.send("k", server, b"y" * 100_000, {"n": n})
        await asyncio.wait_for(done.wait(), 20)
        assert seen == list(range(300))
    finally:
        client.close()
        server.close()
        host.close()
        isolate.close()


WORKER = {
    "wrangler_like.toml": """
        name = "w"
        main = "w.py"
    """,
    "w.py": """
        from edgelet.runtime import handoff
        from workers import Response, WorkerEntrypoint

        def echo(conn, data, meta):
            conn.sendall(data.upper())
            handoff.send("test.back", conn, b"back:" + data, {**meta, "seen": True})
            conn.close()

        handoff.register("test.echo", echo)

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """,
}


@pytest.mark.parametrize("forkserver", ["1", "0"])
async def test_every_isolate_gets_a_handoff_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   forkserver: str) -> None:
    monkeypatch.setenv("EDGELET_FORKSERVER", forkserver)
    write_app(tmp_path, WORKER)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        isolate = p.host.isolates["w"]
        back: asyncio.Future[tuple[socket.socket, bytes, dict[str, Any]]] = \
            asyncio.get_running_loop().create_future()
        isolate.handoff_handlers["test.back"] = lambda conn, data, meta: back.set_result((conn, data, meta))
        client, server = tcp_pair()
        try:
            isolate.handoff.send("test.echo", server, b"hello", {"n": 1})
            server.close()
            conn, data, meta = await asyncio.wait_for(back, 10)
            assert (data, meta) == (b"back:hello", {"n": 1, "seen": True})
            client.settimeout(5)
            assert client.recv(10) == b"HELLO"
            conn.close()
            assert client.recv(10) == b""
            # a restarted isolate gets a fresh socket, and the same callbacks
            old = isolate.handoff
            await isolate.restart()
            assert isolate.handoff is not old and old.closed
            back2: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            isolate.handoff_handlers["test.back"] = lambda conn, data, meta: (conn.close(), back2.set_result(data))
            c2, s2 = tcp_pair()
            isolate.handoff.send("test.echo", s2, b"again")
            s2.close()
            assert await asyncio.wait_for(back2, 10) == b"back:again"
            c2.close()
        finally:
            client.close()
