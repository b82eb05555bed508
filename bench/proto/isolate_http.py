"""Prototype (issue 20): the ceiling of an isolate that serves its own Worker's HTTP.

    python bench/proto/isolate_http.py PORT [--handoff] [bench/apps/hello/hello.py]

Runs one Worker's ``Runtime`` (edgelet.runtime.isolate) in this process and serves it with
uvicorn + httptools on uvloop, through the platform's own protocol class (header cap,
header deadline, joined writes) and the host's request checks (Host validation, the
ASGI -> wire conversion, the body limit) — what an isolate handed its Worker's connections
would run per request. No host process, no channel hop: this measures the ceiling of that
design, not a safe implementation of it (no crash containment, no /cdn-cgi/, no bindings).

With ``--handoff`` the arrangement is the one the design needs: this process is the host,
accepts every connection and passes its descriptor (SCM_RIGHTS, ``socket.send_fds``) over a
Unix socket to a child process, the isolate, which serves it with the protocol above. A
kept-alive connection costs the host one accept and one sendmsg, then nothing per request.
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


def _config(app: Any) -> Any:
    import uvicorn

    from edgelet.http_protocol import CoalescingHttpToolsProtocol
    return uvicorn.Config(app, loop="none", lifespan="off", access_log=False, interface="asgi3",
                          log_level="warning", http=CoalescingHttpToolsProtocol)


def _runtime(script: Path) -> Any:
    from edgelet.runtime.isolate import SDK_DIR, Runtime
    if SDK_DIR not in sys.path:
        sys.path.insert(0, SDK_DIR)
    runtime = Runtime(_NoHost())
    runtime.init({"name": script.stem, "main": str(script.resolve()), "vars": {}, "secrets": {},
                  "bindings": {}, "kinds": {}})
    return runtime


async def isolate(fd: int, script: Path) -> None:
    """The isolate half of ``--handoff``: serve every connection the host passes over ``fd``."""
    from uvicorn.server import ServerState
    config = _config(make_app(_runtime(script)))
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    channel = socket.socket(fileno=fd)
    channel.setblocking(False)
    ready = asyncio.Event()

    def on_readable() -> None:
        ready.set()

    loop.add_reader(fd, on_readable)
    while True:
        await ready.wait()
        ready.clear()
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(channel, 16, 64)
            except BlockingIOError:
                break
            if not fds:
                return  # the host went away
            for conn_fd in fds:
                conn = socket.socket(fileno=conn_fd)
                await loop.connect_accepted_socket(
                    lambda: config.http_protocol_class(config=config, server_state=state, app_state={}),
                    conn)


async def host(port: int, script: Path) -> None:
    """The host half of ``--handoff``: accept, pass the descriptor on, close ours."""
    import subprocess
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    child = subprocess.Popen([sys.executable, __file__, "--isolate", str(there.fileno()), str(script)],
                             pass_fds=(there.fileno(),))
    there.close()
    await asyncio.sleep(1.5)  # the isolate imports and loads the Worker
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(2048)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    print(f"Ready on http://127.0.0.1:{port}", flush=True)
    try:
        while True:
            conn, _ = await loop.sock_accept(listener)
            socket.send_fds(here, [b"c"], [conn.fileno()])
            conn.close()
    finally:
        child.kill()


async def main(port: int, script: Path) -> None:
    import uvicorn
    runtime = _runtime(script)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    server = uvicorn.Server(_config(make_app(runtime)))
    print(f"Ready on http://127.0.0.1:{port}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    import uvloop
    args = sys.argv[1:]
    default = Path(__file__).resolve().parents[1] / "apps" / "hello" / "hello.py"
    if args[0] == "--isolate":
        from edgelet.runtime.isolate import _die_with_parent
        _die_with_parent()  # as a real isolate: it ends with its host, even a killed one
        uvloop.run(isolate(int(args[1]), Path(args[2])))
    elif "--handoff" in args:
        args.remove("--handoff")
        uvloop.run(host(int(args[0]), Path(args[1]) if len(args) > 1 else default))
    else:
        uvloop.run(main(int(args[0]), Path(args[1]) if len(args) > 1 else default))
