"""Isolates serving their own Worker's HTTP connections (edgelet.http_handoff, host half;
edgelet.runtime.http_server, isolate half), against a real `edgelet dev` over real kept-alive
connections: the guarantees of the host path hold (crash 503, idle close, timeout 504,
limits, /cdn-cgi/, other Workers, upgrades handed back, log lines, reloads, host death)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "a"
        main = "w.py"
        limits = { request_timeout_ms = 1500 }

        [[workers]]
        name = "b"
        main = "w.py"
    """,
    "w.py": """
        import asyncio
        import os
        import time
        from urllib.parse import urlparse, parse_qs
        from workers import Response, WorkerEntrypoint

        VERSION = "v1"

        def served_by():
            # the task running this handler: the isolate's own connection, or the
            # channel's answer to the host's fetch call
            return asyncio.current_task().get_coro().__qualname__.split(".")[0]

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                url = urlparse(request.url)
                q = parse_qs(url.query)
                if url.path == "/where":
                    return Response(f"{served_by()} {os.getpid()} {VERSION} {url.netloc}")
                if url.path == "/url":
                    return Response(request.url)
                if url.path == "/crash":
                    os.kill(os.getpid(), 9)
                if url.path == "/slow":
                    await asyncio.sleep(float(q["s"][0]))
                    return Response("slow done")
                if url.path == "/stuck":
                    time.sleep(float(q["s"][0]))
                    return Response("unstuck")
                if url.path == "/echo":
                    body = await request.bytes()
                    return Response(f"{len(body)} {served_by()}")
                if url.path == "/badheader":
                    return Response("x", headers={"x-evil": "a\\r\\nset-cookie: pwned=1"})
                if url.path == "/len":
                    return Response("abc", headers={"content-length": "999", "x-a": "1"})
                if url.path == "/stream":
                    async def gen():
                        for i in range(3):
                            yield f"chunk{i};"
                            await asyncio.sleep(0.01)
                    return Response(gen())
                print(f"printed {url.path}")
                return Response(f"hello {url.path}")
    """,
}

ISOLATE = "IsolateConnection"
HOST = "Channel"


@pytest.fixture(autouse=True)
def _handoff_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path is the default (edgelet.http_handoff): every test here runs without the
    switch set, except the one for the off switch."""
    monkeypatch.delenv("EDGELET_HTTP_HANDOFF", raising=False)


def where(conn: http.client.HTTPConnection, host: str | None = None) -> tuple[str, int, str]:
    conn.request("GET", "/where", headers={"Host": host} if host else {})
    resp = conn.getresponse()
    assert resp.status == 200
    served, pid, version, _ = resp.read().decode().split()
    return served, int(pid), version


def connect(s: Any) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", s.port, timeout=20)


def get(conn: http.client.HTTPConnection, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(), dict(resp.getheaders())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_a_kept_alive_connection_is_served_by_the_isolate_and_logged(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    served, pid, _ = where(conn)
    assert served == ISOLATE
    for i in range(5):  # the same connection, every request in the isolate
        assert where(conn) == (ISOLATE, pid, "v1")
        assert get(conn, f"/n{i}")[:2] == (200, f"hello /n{i}")
    assert get(conn, "/stream")[:2] == (200, "chunk0;chunk1;chunk2;")
    # HEAD has the length and no body; X-Forwarded-Proto from loopback counts, as on the host
    conn.request("HEAD", "/n0")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("content-length"), resp.read()) == (200, "9", b"")
    assert resp.getheader("date") and resp.getheader("server") == "uvicorn"
    assert get(conn, "/url?q=1", **{"X-Forwarded-Proto": "https"})[1] == f"https://127.0.0.1:{s.port}/url?q=1"
    assert where(conn)[0] == ISOLATE
    # each request has the host's log line, the Worker's print too
    text = wait_for(lambda: "a GET /stream 200" in s.logs() and s.logs())
    assert "a GET /where 200 (" in text and "printed /n3" in text and "a GET /stream 200" in text
    conn.close()


def test_the_off_switch_serves_on_the_host(dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_HTTP_HANDOFF", "0")
    s = dev(APP, "--in-memory")
    conn = connect(s)
    assert where(conn)[0] == HOST
    assert get(conn, "/x")[:2] == (200, "hello /x")


def test_cdn_cgi_and_another_worker_on_a_handed_connection_are_served_by_the_host(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    assert where(conn)[0] == ISOLATE
    status, body, _ = get(conn, "/cdn-cgi/edgelet/api/workers")
    assert status == 200 and {w["name"] for w in json.loads(body)["result"]} == {"a", "b"}
    # the connection is the host's now, and still works for the Worker
    assert where(conn)[0] == HOST
    conn.close()
    conn = connect(s)
    _, pid_a, _ = where(conn)
    served, pid_b, _ = where(conn, "b.localhost")  # handed back, then served for b by the host
    assert served == HOST and pid_b != pid_a
    conn.close()
    conn = connect(s)  # a first request for b: b's own isolate serves it
    served, pid, _ = where(conn, f"b.localhost:{s.port}")
    assert (served, pid) == (ISOLATE, pid_b)
    # a POST for /cdn-cgi/ with its body in the same packet: nothing lost on the way back
    body = json.dumps({"x": 1}).encode()
    conn.request("POST", "/cdn-cgi/handler/scheduled?cron=*+*+*+*+*", body=body,
                  headers={"Host": f"b.localhost:{s.port}"})
    resp = conn.getresponse()
    assert resp.status in (200, 500) and resp.read()


def test_an_upgrade_on_a_handed_connection_is_served_by_the_host(dev: Any) -> None:
    s = dev({**APP, "w.py": APP["w.py"].replace(
        "                print(f\"printed {url.path}\")",
        "                if url.path == '/ws':\n"
        "                    from workers import WebSocketPair\n"
        "                    client, server = WebSocketPair.new().object_values()\n"
        "                    server.accept()\n"
        "                    server.send('welcome')\n"
        "                    return Response(None, status=101, web_socket=client)\n"
        "                print(f\"printed {url.path}\")")}, "--in-memory")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        sock.sendall(b"GET /where HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = _read_response(sock)
        assert b"200 OK" in first and ISOLATE.encode() in first
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        data = _read_until(sock, b"welcome")  # the 101, then the Worker's first message
        assert data.startswith(b"HTTP/1.1 101"), data
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in data and data.endswith(b"welcome")
    finally:
        sock.close()


def test_crash_mid_request_gets_503_naming_it_and_idle_connections_close(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    idle = connect(s)
    _, pid, _ = where(idle)
    busy = connect(s)
    assert where(busy)[1] == pid
    status, body, _ = get(busy, "/crash")
    assert status == 503
    assert "Worker 'a' crashed with SIGKILL (killed) while handling fetch" in body
    assert "restarted" in body
    # the idle kept-alive connection was closed: its next request fails to get an answer
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, BrokenPipeError)):
        get(idle, "/x")
    fresh = connect(s)  # a new connection: the restarted isolate serves it
    served, new_pid, _ = where(fresh)
    assert served == ISOLATE and new_pid != pid


def test_sigkill_of_the_isolate_while_idle_closes_and_the_next_connection_is_served(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    _, pid, _ = where(conn)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid))
    conn.sock.settimeout(10)
    assert wait_for(lambda: conn.sock.recv(10) == b"" or None)  # closed by the host
    fresh = connect(s)
    served, new_pid, _ = where(fresh)
    assert served == ISOLATE and new_pid != pid


def test_sigkill_of_the_isolate_mid_request_gets_503(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    _, pid, _ = where(conn)
    out: dict[str, Any] = {}

    def slow() -> None:
        out["resp"] = get(conn, "/slow?s=5")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    t.join(15)
    status, body, _ = out["resp"]
    assert status == 503 and "crashed with SIGKILL" in body


def test_timeout_gets_504_in_a_live_and_in_a_stuck_isolate(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    _, pid, _ = where(conn)
    t0 = time.monotonic()
    status, body, _ = get(conn, "/slow?s=5")  # the isolate's loop runs: it answers 504 itself
    assert status == 504 and "did not answer fetch within 1.5 s (request_timeout_ms)" in body
    assert time.monotonic() - t0 < 4
    conn = connect(s)
    assert where(conn)[1] == pid  # the isolate answered, so it lives on
    t0 = time.monotonic()
    status, body, _ = get(conn, "/stuck?s=30")  # its loop is stuck: the host answers
    assert status == 504 and "did not answer fetch within 1.5 s" in body
    assert time.monotonic() - t0 < 5
    wait_for(lambda: gone(pid))  # the unresponsive-isolate check killed it
    assert where(connect(s))[1] != pid
    assert "isolate is unresponsive; restarting it" in s.logs()


def test_limits_431_400_413_from_the_isolate(dev: Any) -> None:
    s = dev(APP, "--in-memory", "--max-body-size", "100000")
    conn = connect(s)
    assert where(conn)[0] == ISOLATE
    status, body, _ = get(conn, "/x", Host="bad host")
    assert status == 400 and "is not a valid host[:port]" in body
    conn = connect(s)
    assert where(conn)[0] == ISOLATE
    conn.request("POST", "/echo", body=b"x" * 50_000)
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, f"50000 {ISOLATE}".encode())
    conn.request("POST", "/echo", body=b"x" * 100_001)  # declared over the limit
    resp = conn.getresponse()
    assert resp.status == 413 and b"larger than the limit of 100000 bytes" in resp.read()
    conn = connect(s)
    assert where(conn)[0] == ISOLATE

    def chunks() -> Any:  # no length declared: over the limit while it streams in
        for _ in range(30):
            yield b"y" * 10_000

    conn.request("POST", "/echo", body=chunks(), encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and b"larger than the limit" in resp.read()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        sock.sendall(b"GET /where HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert ISOLATE.encode() in _read_response(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"z" * 70_000 + b"\r\n\r\n")
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    finally:
        sock.close()


def test_a_streamed_request_body_reaches_the_worker_in_the_isolate(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    assert where(conn)[0] == ISOLATE

    def chunks() -> Any:
        for _ in range(100):
            yield b"q" * 10_000

    conn.request("POST", "/echo", body=chunks(), encode_chunked=True)
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, f"1000000 {ISOLATE}".encode())


def test_a_reload_keeps_kept_alive_connections_working(dev: Any, tmp_path: Path) -> None:
    s = dev(APP, "--in-memory")
    idle = connect(s)
    _, pid, version = where(idle)
    assert version == "v1"
    busy = connect(s)
    assert where(busy)[1] == pid
    out: dict[str, Any] = {}

    def slow() -> None:
        out["resp"] = get(busy, "/slow?s=1.2")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    script = tmp_path / "w.py"
    script.write_text(script.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
    wait_for(lambda: where(connect(s))[2] == "v2")
    t.join(15)
    status, body, _ = out["resp"]
    assert status == 503 and "Worker 'a' was reloaded (its code changed)" in body
    # the idle connection of the old isolate was handed to the new one: it just works
    served, new_pid, version = where(idle)
    assert (served, version) == (ISOLATE, "v2") and new_pid != pid
    assert where(idle)[1] == new_pid


def test_edgelet_tail_sees_requests_served_in_the_isolate(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    lines: list[dict[str, Any]] = []

    def follow() -> None:
        with httpx.stream("GET", s.url + "/cdn-cgi/edgelet/api/tail", timeout=30) as resp:
            for line in resp.iter_lines():
                if line.strip():
                    lines.append(json.loads(line))

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: any(e.get("type") == "hello" for e in lines))
    conn = connect(s)
    assert where(conn)[0] == ISOLATE
    get(conn, "/tailed")
    found = wait_for(lambda: [e for e in lines if "a GET /tailed 200" in str(e.get("message"))])
    assert found[0]["worker"] == "a"
    assert wait_for(lambda: [e for e in lines if e.get("message") == "printed /tailed"])


def test_killing_the_host_ends_the_isolates_and_their_connections(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    conn = connect(s)
    _, pid, _ = where(conn)
    busy = connect(s)
    where(busy)
    busy.request("GET", "/slow?s=30")
    time.sleep(0.3)  # in the Worker now
    s.kill()
    wait_for(lambda: gone(pid))
    conn.sock.settimeout(10)
    assert conn.sock.recv(10) == b""
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        busy.getresponse()


def test_pipelined_requests_http10_and_expect_continue_on_a_handed_connection(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    read = _Responses(sock)
    try:
        # three requests in one write: answered in order, the slow one first
        sock.sendall(b"GET /slow?s=0.2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
                     b"GET /where HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first, second, third = read(), read(), read()
        assert first.endswith(b"slow done") and second.endswith(f"5 {ISOLATE}".encode())
        assert ISOLATE.encode() in third
        # Expect: 100-continue: the interim answer, then the body, then the response
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert read.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        assert read().endswith(f"3 {ISOLATE}".encode())
        # the Worker's own Content-Length is replaced by the real one
        sock.sendall(b"GET /len HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read()
        assert b"content-length: 3\r\n" in answer and b"999" not in answer and answer.endswith(b"\r\n\r\nabc")
        # a header value with CR LF is not written: 500 naming it, no injected header
        sock.sendall(b"GET /badheader HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read()
        assert answer.startswith(b"HTTP/1.1 500") and b"pwned" not in answer.split(b"\r\n\r\n")[0]
        assert b"x-evil" in answer and b"line break" in answer
        assert read.until(b"never") == b""  # and the connection closed
    finally:
        sock.close()
    # HTTP/1.0: one request, then the connection closes
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        sock.sendall(b"GET /where HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = _read_until(sock, b"never")
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer and ISOLATE.encode() in answer
    finally:
        sock.close()
    # a malformed request on a handed connection: 400, closed
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        sock.sendall(b"GET /where HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert ISOLATE.encode() in _read_response(sock)
        sock.sendall(b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n")
        assert _read_until(sock, b"never").startswith(b"HTTP/1.1 400")
    finally:
        sock.close()
    assert "x-evil" in s.logs()


class _Responses:
    """Whole responses read in turn from one socket (pipelined answers may share a read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def until(self, marker: bytes) -> bytes:
        """The bytes up to and including ``marker`` (all that came, if the connection ended)."""
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                data, self.buf = self.buf, b""
                return data
            self.buf += chunk
        end = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    def __call__(self) -> bytes:
        head = self.until(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:length], self.buf[length:]
        return head + body


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_response(sock: socket.socket) -> bytes:
    head = _read_until(sock, b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = head.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += sock.recv(65536)
    return head + body
