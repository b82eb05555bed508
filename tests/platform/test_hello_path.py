"""The hello-world request path after its speed-ups (issue 20): requests with and without
a body, and what a Worker prints just before its isolate dies still reaches the log."""

from __future__ import annotations

import socket

WORKER = {
    "wrangler_like.toml": """
        name = "front"
        main = "front.py"
    """,
    "front.py": """
        import os
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                path = request.url.split("/", 3)[3]
                if path == "die":
                    print("last words before the exit")
                    os._exit(3)
                body = await request.text()
                return Response(f"{request.method} {len(body)} {body[:20]}",
                                headers={"x-seen-length": request.headers.get("content-length") or "-"})
    """,
}


def test_bodies_arrive_whole_with_or_without_a_declared_length(dev):
    s = dev(WORKER)
    assert s.get("/").text == "GET 0 "
    assert s.post("/", content=b"").text == "POST 0 "
    assert s.post("/", content=b"hello body").text == "POST 10 hello body"

    def chunks():
        yield b"chunked "
        yield b"body"

    r = s.post("/", content=chunks())  # Transfer-Encoding: chunked, no Content-Length
    assert r.text == "POST 12 chunked body" and r.headers["x-seen-length"] == "-"


def test_a_request_without_a_body_on_a_kept_alive_connection_is_answered_each_time(dev):
    s = dev(WORKER)
    host, port = s.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = conn.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"GET 0 ") == 3


def test_what_a_worker_prints_just_before_its_isolate_exits_is_logged(dev):
    s = dev(WORKER)
    r = s.get("/die", timeout=20)
    assert r.status_code == 503 and "exited with code 3" in r.text
    assert "last words before the exit" in s.logs()
    assert s.get("/").text == "GET 0 "  # a fresh isolate answers the next request
