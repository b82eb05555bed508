"""Prototype (issue 20): the ceiling of an isolate that serves its own Worker's HTTP.

    python bench/proto/isolate_http.py PORT [bench/apps/hello/hello.py]

Runs one Worker's ``Runtime`` (edgelet.runtime.isolate) in this process and serves it with
uvicorn + httptools on uvloop, through the platform's own protocol class (header cap,
header deadline, joined writes) and the host's request checks (Host validation, the
ASGI -> wire conversion, the body limit) — what an isolate handed its Worker's connections
would run per request. No host process, no channel hop: this measures the ceiling of that
design, not a safe implementation of it (no crash containment, no /cdn-cgi/, no bindings).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any


class _NoHost:
    """Stands in for the channel to the host: hello-world calls no binding; logs go to stderr."""

    sync_handler = None

    def notify(self, method: str, *args: Any) -> None:
        if method == "log":
            print(*args, file=sys.__stderr__)

    async def call(self, method: str, *args: Any, **_: Any) -> Any:
        raise RuntimeError("no host in this prototype")

    def flush(self) -> None:
        pass


def make_app(runtime: Any) -> Any:
    from edgelet.server import DEFAULT_MAX_BODY, BadRequest, _may_have_body, _url, request_host

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            host = request_host(scope)
        except BadRequest as exc:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": str(exc).encode()})
            return
        body = b""
        if _may_have_body(scope["headers"]):
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if sum(map(len, chunks)) > DEFAULT_MAX_BODY:
                    return
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        status, out_headers, out_body = await runtime.on_fetch(
            [scope["method"], _url(scope, host), headers, body])
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers if k != "content-length"]
        raw.append((b"content-length", str(len(out_body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": out_body})

    return app


async def main(port: int, script: Path) -> None:
    import uvicorn

    from edgelet.http_protocol import CoalescingHttpToolsProtocol
    from edgelet.runtime.isolate import SDK_DIR, Runtime
    if SDK_DIR not in sys.path:
        sys.path.insert(0, SDK_DIR)
    runtime = Runtime(_NoHost())
    runtime.init({"name": script.stem, "main": str(script.resolve()), "vars": {}, "secrets": {},
                  "bindings": {}, "kinds": {}})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    server = uvicorn.Server(uvicorn.Config(make_app(runtime), loop="none", lifespan="off", access_log=False,
                                           interface="asgi3", log_level="warning",
                                           http=CoalescingHttpToolsProtocol))
    print(f"Ready on http://127.0.0.1:{port}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    import uvloop
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "apps" / "hello" / "hello.py"
    uvloop.run(main(int(sys.argv[1]), target))
