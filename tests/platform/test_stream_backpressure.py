"""Backpressure on streamed responses (edgelet.flow): a Worker streaming a large body to a
client that reads slowly is paused instead of piling the body up in the host."""

from __future__ import annotations

import socket
import time

import httpx
from procstats import peak_rss_kb

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
"""

WORKER = '''
    from workers import Response, WorkerEntrypoint

    PRODUCED = {"bytes": 0}
    BLOCK = b"s" * (1 << 20)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/produced"):
                return Response.json(PRODUCED)
            async def body():
                for _ in range(200):
                    PRODUCED["bytes"] += len(BLOCK)
                    yield BLOCK
            return Response(body(), headers={"content-type": "application/octet-stream"})
'''


def test_slow_client_pauses_the_worker_instead_of_filling_the_host(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    assert s.proc is not None
    assert httpx.get(s.url + "/produced", timeout=30).json() == {"bytes": 0}
    host_before = peak_rss_kb(s.proc.pid)
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(2.0)  # the client reads nothing for a while
        stalled = httpx.get(s.url + "/produced", timeout=30).json()["bytes"]
        stalled_growth_mb = (peak_rss_kb(s.proc.pid) - host_before) / 1024
        # the Worker was held back: a window and the sockets' buffers, not 200 MB
        assert stalled < 32 * 2**20, stalled
        received = len(head)
        while True:
            data = sock.recv(1 << 20)
            if not data or data.endswith(b"0\r\n\r\n"):
                received += len(data)
                break
            received += len(data)
    assert received > 200 * 2**20  # every byte arrived (plus chunk framing)
    assert httpx.get(s.url + "/produced", timeout=30).json()["bytes"] == 200 * 2**20
    host_growth_mb = (peak_rss_kb(s.proc.pid) - host_before) / 1024
    print(f"produced while stalled: {stalled / 2**20:.1f} MB; host peak growth "
          f"{stalled_growth_mb:.1f} MB stalled, {host_growth_mb:.1f} MB overall")
    assert host_growth_mb < 40, host_growth_mb
