"""The fork server: imports the isolate runtime once, then forks each isolate from itself.

Why: a fresh interpreter that imports asyncio, uvloop, msgpack, cloudpickle and the SDK
costs ~150 ms of CPU; a fork of a process that already has them costs a few ms. Ten
Workers start in a blink and a crashed isolate is back at once.

Protocol on a SOCK_SEQPACKET socket (one message per packet, JSON):
    host -> server: {"id": n, "env": {...}, "memory_cap": bytes}  with the isolate's channel
                    socket fd, then optionally its handoff socket fd (edgelet.handoff), which
                    the child finds in EDGELET_HANDOFF_FD
    server -> host: {"id": n, "pid": pid}  |  {"exit": pid, "code": code}  |  {"ready": true}
The server has no threads and runs no event loop, so forking it is safe.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys


def _warm_imports() -> None:
    """Everything an isolate imports before it serves, so children share the pages."""
    import asyncio  # noqa: F401
    import pkgutil

    import cloudpickle  # noqa: F401
    import msgpack  # noqa: F401
    import uvloop  # noqa: F401

    import edgelet.bindings
    import edgelet.channel  # noqa: F401
    import edgelet.handoff
    import edgelet.runtime.entrypoints  # noqa: F401
    if edgelet.handoff.http_enabled():  # isolates serve their Worker's connections (httptools, no uvicorn)
        import edgelet.runtime.http_server  # noqa: F401
    import edgelet.runtime.http_types  # noqa: F401
    import edgelet.runtime.isolate  # noqa: F401
    import edgelet.runtime.outgoing  # noqa: F401
    from edgelet.runtime import devtools
    devtools.interpreter_dirs()  # every isolate reads them after its script's imports
    import workers  # noqa: F401  (the SDK, from SDK_DIR)
    for info in pkgutil.iter_modules(edgelet.bindings.search_path()):
        try:
            __import__(f"edgelet.bindings.{info.name}.isolate")
        except ImportError:
            pass


def _child(request: dict, fds: list[int], ctrl: socket.socket, wake_r: int, wake_w: int) -> None:
    """In the forked child: become the isolate for ``fds[0]`` (its channel; ``fds[1]``, if
    sent, is its handoff socket); never returns."""
    fd = fds[0]
    try:
        ctrl.close()
        os.close(wake_r)
        os.close(wake_w)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.update(request.get("env", {}))
        if len(fds) > 1:
            from edgelet.handoff import ENV_FD
            os.environ[ENV_FD] = str(fds[1])
        cap = request.get("memory_cap")
        if cap:
            import resource
            try:
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            except (ValueError, OSError):
                pass
        import faulthandler
        import random
        random.seed()
        faulthandler.enable()
        from edgelet.runtime.isolate import run
        run(fd)
    finally:
        os._exit(1)


def serve(ctrl: socket.socket) -> None:
    isolates: set[int] = set()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    try:
        ctrl.send(json.dumps({"ready": True}).encode())
    except OSError:  # the host is gone before this server was ready (its start failed): leave quietly
        return
    while True:
        try:
            readable, _, _ = select.select([ctrl.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            os.read(wake_r, 4096)
            _reap(ctrl, isolates)
        if ctrl.fileno() in readable:
            try:
                message, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 2)
            except ConnectionError:
                return
            if not message:
                return  # the host is gone
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                _child(request, fds, ctrl, wake_r, wake_w)
            isolates.add(pid)
            for fd in fds:
                os.close(fd)
            ctrl.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def _reap(ctrl: socket.socket, isolates: set[int]) -> None:
    """Collect exited children: tell the host about isolates, kill adopted orphans."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if pid in isolates:
            isolates.discard(pid)
            ctrl.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
    _kill_orphans(isolates)


def _kill_orphans(isolates: set[int]) -> None:
    """SIGKILL children of this server that are not isolates.

    This server is a child subreaper: when an isolate dies on its own (a crash, its CPU
    or memory limit), the processes its Worker started are re-parented here, and a
    Worker's processes must not outlive its isolate. Killing one re-parents its own
    children here in turn; their SIGCHLD brings us back until none is left.
    """
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            children = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return
    for pid in children:
        if pid not in isolates:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> None:
    from edgelet.runtime.isolate import SDK_DIR, _become_subreaper, _die_with_parent, ignore_group_signals
    if SDK_DIR not in sys.path:
        sys.path.insert(0, SDK_DIR)
    _die_with_parent()
    _become_subreaper()
    ignore_group_signals()
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    _warm_imports()
    serve(ctrl)
    os._exit(0)


if __name__ == "__main__":
    main()
