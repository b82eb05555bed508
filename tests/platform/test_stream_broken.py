"""A streamed response body that breaks off must not look whole to the client.

Before: when the Worker's body generator raised (or its isolate died) half way, the host
ended the chunked body cleanly: the client got a short body and a normal end, so a
truncated download or export looked complete. Now the connection is closed without the
final chunk, which every HTTP client reports as an incomplete body."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
import asyncio, os
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.rsplit("/", 1)[1]

        async def rows():
            yield b"id,name\n"
            yield b"1,ann\n"
            await asyncio.sleep(0.05)
            if path == "raise":
                raise RuntimeError("the export query failed")
            if path == "crash":
                os._exit(3)
            yield b"2,bob\n"

        return Response(rows(), headers={"content-type": "text/csv"})
'''


def raw_get(port: int, path: str) -> bytes:
    """The raw bytes of a response, read until the server closes or ends the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("path", ["raise", "crash"])
def test_a_body_that_breaks_off_is_incomplete_for_the_client(dev: Any, path: str) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    data = raw_get(s.port, f"/{path}")
    assert data.startswith(b"HTTP/1.1 200 ") and b"1,ann\n" in data, data
    assert not data.endswith(b"\r\n0\r\n\r\n"), data  # no final chunk: the body is not passed off as whole
    with pytest.raises(httpx.RemoteProtocolError):
        s.get(f"/{path}")
    logs = s.wait_for_log("closed the connection so the client sees an incomplete body")
    assert "closed the connection so the client sees an incomplete body" in logs
    if path == "raise":
        assert "RuntimeError: the export query failed" in logs
    ok = s.get("/fine")  # the platform goes on serving, whole bodies end normally
    assert ok.status_code == 200 and ok.text == "id,name\n1,ann\n2,bob\n"
    assert raw_get(s.port, "/fine").endswith(b"\r\n0\r\n\r\n")
