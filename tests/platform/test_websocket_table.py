"""The host's table of WebSockets, driven directly: a socket closed by a reload while its first
hand-over to an isolate is still waiting for the isolate's answer must not leave the
connection's task waiting forever (it held uvicorn's connection and descriptor for the life
of `edgelet dev`)."""
from __future__ import annotations

import asyncio
import socket
import types
from typing import Any

from edgelet import websockets
from edgelet.handoff import Endpoint, socketpair


class Transport:
    """What _hand_over reads of uvicorn's transport."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.paused = sock, False

    def get_extra_info(self, key: str) -> Any:
        return self.sock if key == "socket" else None

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


async def test_a_socket_closed_during_its_first_hand_over_ends_the_hand_over() -> None:
    client, server = socket.socketpair()
    here, there = socketpair()  # the isolate's end never answers "took"
    endpoint = Endpoint(here)
    endpoint.start()
    channel = types.SimpleNamespace(closed=False, notify=lambda *a: None)
    host = types.SimpleNamespace(isolates={"w": types.SimpleNamespace(handoff=endpoint, _channel=channel)},
                                 logbus=types.SimpleNamespace(publish=lambda event: None))
    table = websockets.SocketTable(host)
    try:
        table.on_notify("w", ["accept", "tok", None, []])
        sock = table.sockets["tok"]
        sock.send_now = types.SimpleNamespace(transport=Transport(server), between_frames=lambda: True)
        sock.send = lambda message: None
        handing = asyncio.ensure_future(table._hand_over(sock))
        await asyncio.sleep(0.05)
        assert sock.state == websockets.HANDING
        await table.close_for_restart("reloaded", worker="w", hibernated=False)
        assert "tok" not in table.sockets
        # True: uvicorn lets its end of the (already shut down) connection go
        assert await asyncio.wait_for(handing, 2) is True
        client.settimeout(2)
        frame = client.recv(64)
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1012  # a close frame
    finally:
        endpoint.close()
        for s in (client, server, there):
            s.close()
