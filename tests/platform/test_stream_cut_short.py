"""Streamed response bodies that end badly (review 5, items 9 and 10): a body cut short
must reach the client as incomplete (no final zero-length chunk), with the reason in the
log; a body nobody will read any more must be cancelled in the isolate (its generator
closed), whether the answer came after its 504, the client left during the upload, or
the Worker answered 101 to a plain request."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

TOML = 'name = "w"\nmain = "worker.py"\ncompatibility_date = "2026-01-01"\n'

WORKER = '''
import asyncio, os
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/raise"):
            async def bad():
                yield b"partial "
                await asyncio.sleep(0.2)
                raise RuntimeError("stream broke")
            return Response(bad())
        if request.url.endswith("/die"):
            async def die():
                yield b"partial "
                await asyncio.sleep(0.2)
                os._exit(9)
            return Response(die())
        if request.url.endswith("/whole"):
            async def whole():
                yield b"first "
                await asyncio.sleep(0.05)
                yield b"last"
            return Response(whole())
        return Response("ok")
'''


def raw_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


def wait_for_log(s, text: str, timeout: float = 8.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = s.logs()
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.1)


@pytest.mark.parametrize("handoff", ["1", "0"], ids=["isolate-served", "host-served"])
@pytest.mark.parametrize("path,reason", [
    ("/raise", "its response body raised RuntimeError: stream broke"),
    ("/die", "exited with code 9 while streaming the response body"),
])
def test_a_body_cut_short_ends_the_connection_without_the_last_chunk(dev, monkeypatch, handoff, path, reason):
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", handoff)
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    data = raw_get(s.port, path)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"partial " in data
    # a complete chunked body ends with the zero-length chunk: this one must not
    assert not data.endswith(b"0\r\n\r\n"), data
    # an HTTP client sees the body as incomplete, not as a short success
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(s.url + path, timeout=15)
    logs = wait_for_log(s, reason)
    line = next((ln for ln in logs.splitlines() if "cut short" in ln), "")
    assert reason in line, logs[-3000:]
    if not (handoff == "1" and path == "/die"):  # (the host cannot know which request a dead
        assert f"GET {path}" in line, logs[-3000:]  # isolate was streaming, only that it was)
    assert "Worker 'w'" in line
    assert "Exception in ASGI application" not in logs
    assert "without completing response" not in logs
    # a whole stream still ends with its last chunk, and the Worker still serves
    whole = raw_get(s.port, "/whole")
    assert whole.endswith(b"0\r\n\r\n") and b"first " in whole and b"last" in whole, whole
    assert httpx.get(s.url + "/whole", timeout=15).text == "first last"


LATE_TOML = 'name = "app"\nmain = "app.py"\n[limits]\nrequest_timeout_ms = 1000\n'
PRODUCER = '''
import asyncio
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await asyncio.sleep(DELAY)
        async def body():
            n = 0
            try:
                while True:
                    n += 1
                    yield b"x" * 65536
                    await asyncio.sleep(0.01)
            finally:
                print(f"generator closed after {n} chunks")
        return Response(body(), status=STATUS)
'''


# The next two are about the host-served path's streams (a body that crosses the channel, as
# a service binding's does too). On the isolate-served path a late or 101 answer's body is
# never started, so there is nothing to cancel.
def test_an_answer_after_its_504_has_its_stream_cancelled(dev, monkeypatch):
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", "0")
    s = dev({"wrangler_like.toml": LATE_TOML,
             "app.py": PRODUCER.replace("DELAY", "1.5").replace("STATUS", "200")})
    r = httpx.get(s.url + "/", timeout=15)
    assert r.status_code == 504
    logs = wait_for_log(s, "generator closed")
    assert "generator closed" in logs, "the late stream was never cancelled:\n" + logs[-2000:]
    assert "answered fetch after it was abandoned" in logs


def test_a_client_gone_mid_upload_has_the_streamed_answer_cancelled(dev):
    s = dev({"wrangler_like.toml": 'name = "app"\nmain = "app.py"\n',
             "app.py": PRODUCER.replace("DELAY", "0.8").replace("STATUS", "200")})
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n")
        sock.sendall(b"y" * 200_000)  # past STREAM_AFTER: the Worker runs while it arrives
        time.sleep(0.3)
    logs = wait_for_log(s, "generator closed")
    assert "generator closed" in logs, "the answer to a gone client was never cancelled:\n" + logs[-2000:]


def test_a_streamed_101_to_a_plain_request_is_cancelled(dev, monkeypatch):
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", "0")
    s = dev({"wrangler_like.toml": 'name = "app"\nmain = "app.py"\n',
             "app.py": PRODUCER.replace("DELAY", "0").replace("STATUS", "101")})
    r = httpx.get(s.url + "/", timeout=15)
    assert r.status_code == 426
    logs = wait_for_log(s, "generator closed")
    assert "generator closed" in logs, "the 101's streamed body was never cancelled:\n" + logs[-2000:]


REUSE_WORKER = '''
import asyncio, os
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/big"):
            async def big():
                for _ in range(1000):
                    yield b"x" * 65536
            return Response(big())
        if request.url.endswith("/die"):
            os._exit(3)
        async def two():
            yield b"a"
            await asyncio.sleep(1.0)
            yield b"b"
        return Response(two())
'''


def test_a_dead_process_reader_finishing_late_leaves_the_next_process_stream_alone(dev):
    """Stream ids restart at 1 in a new isolate process: the old process's body 1, read
    late by a slow client, must not end the new process's body 1 (review 5, item 11)."""
    import threading
    s = dev({"wrangler_like.toml": 'name = "app"\nmain = "app.py"\n', "app.py": REUSE_WORKER})
    with socket.create_connection(("127.0.0.1", s.port), timeout=15) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = slow.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(1.0)  # the host's reader of body 1 waits on this client, chunks queued
        assert httpx.get(s.url + "/die", timeout=15).status_code == 503  # the process dies
        second: dict[str, Any] = {}

        def fetch_two() -> None:
            try:
                second["text"] = httpx.get(s.url + "/two", timeout=8).text
            except Exception as exc:  # a hang: the read times out
                second["error"] = repr(exc)

        thread = threading.Thread(target=fetch_two)
        thread.start()  # the new process's first streamed body: id 1 again
        time.sleep(0.5)
        rest = b""
        while True:  # the slow client now takes all: the old reader reaches its end
            data = slow.recv(1 << 20)
            if not data:
                break
            rest += data
        thread.join()
    assert second == {"text": "ab"}
    assert not rest.endswith(b"0\r\n\r\n")  # the old body was cut short, and says so
