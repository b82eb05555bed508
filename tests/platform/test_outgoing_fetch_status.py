"""An upstream's status outside 200-599 reaches the Worker's ``fetch()`` as sent.

Only a Response the Worker builds itself is held to 200-599 (``Response(status=999)`` is
workerd's RangeError); a server answering 999, as LinkedIn does to bots, is passed through by
Cloudflare's fetch. Before: the fetch raised the RangeError meant for the Worker's own Response."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from workers import Response, WorkerEntrypoint, fetch


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        port = request.url.split("?port=")[1]
        resp = await fetch(f"http://127.0.0.1:{port}/")
        return Response(f"{resp.status} {await resp.text()}")
'''


class _Answer999(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"request denied"
        self.send_response(999, "Request denied")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer999)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_upstream_status_999_reaches_the_worker(dev: Any, upstream: int) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    r = s.get(f"/?port={upstream}")
    assert r.status_code == 200, r.text
    assert r.text == "999 request denied"
