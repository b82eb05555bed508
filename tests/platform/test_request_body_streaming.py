"""Request bodies streamed into the isolate (edgelet.request_body): a Worker reads chunks as
the client sends them, an ASGI app gets ``http.request`` messages with ``more_body``, a
200 MB upload is held neither by the host nor by the isolate, and the old guarantees stay:
413 over the limit, and a client that stops mid-body makes the Worker's read fail."""

from __future__ import annotations

import json
import socket
import time

import httpx
from procstats import peak_rss_kb

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    kv_namespaces = [{ binding = "KV", id = "kv" }]
"""

WORKER = '''
    import json
    from workers import Response, WorkerEntrypoint
    import asgi

    def peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    async def raw_asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        seen = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append("disconnect")
                break
            seen.append([len(message["body"]), message["more_body"]])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(seen).encode()})

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("/", 3)[-1]
            if path == "progress":
                # answer at once, then report each chunk as it is read
                reader = request.body.getReader()
                async def report():
                    total = 0
                    while True:
                        part = await reader.read()
                        if part.done:
                            yield f"done {total}\\n"
                            return
                        total += len(part.value.to_bytes())
                        yield f"got {total}\\n"
                return Response(report(), headers={"content-type": "text/plain"})
            if path == "count":
                before = peak_kb()
                total = chunks = 0
                async for chunk in request.body:
                    total += len(chunk.to_bytes())
                    chunks += 1
                return Response.json({"total": total, "chunks": chunks,
                                      "peak_growth_kb": peak_kb() - before})
            if path == "asgi":
                return await asgi.fetch(raw_asgi, request, self.env)
            if path == "store":
                text = await request.text()  # the whole body, or the read fails
                await self.env.KV.put("stored", text)
                return Response(f"stored {len(text)}")
            if path == "careful":
                try:
                    await request.bytes()
                except ConnectionError as exc:
                    print("careful worker saw:", exc)
                    await self.env.KV.put("careful", "failed read")
                    return Response("incomplete", status=400)
                return Response("whole")
            return Response("?", status=404)
'''


def test_worker_reads_chunks_as_the_client_sends_them(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"POST /progress HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n"
                     + b"a" * 100_000)
        seen = b""
        while b"got 100000\n" not in seen:  # the Worker read the first half before the rest exists
            data = sock.recv(65536)
            assert data, seen
            seen += data
        assert b"HTTP/1.1 200" in seen and b"done" not in seen
        sock.sendall(b"b" * 100_000)
        while b"done 200000\n" not in seen:
            data = sock.recv(65536)
            assert data, seen
            seen += data


def test_a_small_body_cut_short_never_reaches_the_worker(dev):
    """Up to 64 KiB the body is read whole before the Worker runs (SPEC 5): a client that
    goes away mid-body leaves no trace, even for a Worker that never reads its body."""
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"POST /careful HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60000\r\n\r\n"
                     + b"y" * 30_000)
        time.sleep(0.3)
    logs = s.wait_for_log("the client went away after 30000 of 60000")
    assert "the client went away after 30000 of 60000 body bytes; not run" in logs, logs[-2000:]
    assert "careful worker saw" not in logs


def test_asgi_app_receives_http_request_chunks_with_more_body(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    def parts():
        for _ in range(5):
            yield b"x" * 100_000
            time.sleep(0.05)
    seen = httpx.post(s.url + "/asgi", content=parts(), timeout=30).json()
    assert sum(p[0] for p in seen) == 500_000
    assert all(p[0] <= 65536 for p in seen)  # at most 64 KiB a message, as documented
    assert all(p[1] for p in seen[:-1]) and seen[-1] == [0, False]
    # a small body still arrives in one message
    assert httpx.post(s.url + "/asgi", content=b"tiny", timeout=30).json() == [[4, False]]


def test_asgi_app_gets_disconnect_when_the_client_stops_mid_body(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"POST /careful HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                     + b"y" * 70_000)
        time.sleep(0.3)
    logs = s.wait_for_log("careful worker saw")
    assert "careful worker saw: the client went away after" in logs, logs[-2000:]
    assert "of 100000 body bytes" in logs
    # the Worker that reads the whole body and stores it never stores half of one
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"POST /store HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n"
                     + b"z" * 90_000)
        time.sleep(0.3)
    time.sleep(1.0)
    r = httpx.get(s.url + "/cdn-cgi/edgelet/api/kv/kv/values/stored", timeout=10).json()
    assert r["success"] is False or r["result"] is None, r
    assert httpx.post(s.url + "/store", content=b"w" * 200_000, timeout=30).text == "stored 200000"


def test_body_over_the_limit_without_content_length_gets_413(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER}, "--max-body-size", "1000000")
    def parts():
        for _ in range(30):
            yield b"q" * 100_000
    r = httpx.post(s.url + "/store", content=parts(), timeout=30)  # chunked: no length up front
    assert r.status_code == 413 and "larger than the limit of 1000000 bytes" in r.text
    time.sleep(0.5)
    r = httpx.get(s.url + "/cdn-cgi/edgelet/api/kv/kv/values/stored", timeout=10).json()
    assert r["success"] is False or r["result"] is None, r
    # under the limit, the same Worker runs
    assert httpx.post(s.url + "/store", content=b"ok", timeout=30).text == "stored 2"


def test_200_mb_upload_is_held_by_neither_host_nor_isolate(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER}, "--max-body-size", str(300 * 2**20))
    assert s.proc is not None
    httpx.post(s.url + "/count", content=b"warm", timeout=30)  # isolate started, imports done
    host_before = peak_rss_kb(s.proc.pid)
    size = 200 * 2**20
    block = b"u" * 2**20

    def parts():
        for _ in range(size // len(block)):
            yield block

    started = time.monotonic()
    r = httpx.post(s.url + "/count", content=parts(), headers={"content-length": str(size)}, timeout=120)
    elapsed = time.monotonic() - started
    result = r.json()
    host_growth_mb = (peak_rss_kb(s.proc.pid) - host_before) / 1024
    print(json.dumps({"upload_mb": 200, "seconds": round(elapsed, 2), "host_peak_growth_mb":
                      round(host_growth_mb, 1), "isolate_peak_growth_mb":
                      round(result["peak_growth_kb"] / 1024, 1)}))
    assert result["total"] == size and result["chunks"] > 100
    assert result["peak_growth_kb"] < 40 * 1024, result  # the isolate held a window, not 200 MB
    assert host_growth_mb < 40, host_growth_mb


FORWARD_TOML = """
    [[workers]]
    name = "front"
    main = "front.py"
    services = [{ binding = "BACK", service = "back" }]
    durable_objects.bindings = [{ name = "SIZER", class_name = "Sizer" }]

    [[workers]]
    name = "back"
    main = "back.py"
"""

FRONT = '''
    from workers import DurableObject, Response, WorkerEntrypoint

    class Sizer(DurableObject):
        async def fetch(self, request):
            return Response(f"object got {len(await request.bytes())}")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/object"):
                stub = self.env.SIZER.get(self.env.SIZER.idFromName("one"))
                return await stub.fetch(request)
            return await self.env.BACK.fetch(request)
'''

BACK = '''
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(f"back got {len(await request.bytes())}")
'''


def test_a_streamed_body_passed_on_arrives_whole(dev):
    s = dev({"wrangler_like.toml": FORWARD_TOML, "front.py": FRONT, "back.py": BACK})
    body = b"f" * 700_000  # arrives in several ASGI messages: streamed into "front"
    assert httpx.post(s.url + "/", content=body, timeout=30).text == "back got 700000"
    assert httpx.post(s.url + "/object", content=body, timeout=30).text == "object got 700000"
