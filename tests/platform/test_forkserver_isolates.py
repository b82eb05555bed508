"""The fork server (edgelet.forkserver + edgelet.runtime.forkserver): isolates fork from
one warm process; with ``EDGELET_FORKSERVER=0`` they start as fresh interpreters; when the
fork server dies its isolates die with it and the platform keeps serving from fresh
interpreters. Real processes throughout, inspected with psutil."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from conftest import write_app

from edgelet.testing import Platform

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "a"
        main = "w.py"

        [[workers]]
        name = "b"
        main = "w.py"
    """,
    "w.py": """
        import os
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(f"{os.getpid()} {os.getppid()}")
    """,
}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def pids(p: Platform, worker: str) -> tuple[int, int]:
    resp = await p.fetch("/", worker=worker)
    assert resp.status == 200, await resp.text()
    pid, ppid = (int(x) for x in (await resp.text()).split())
    return pid, ppid


async def test_isolates_fork_from_the_fork_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGELET_FORKSERVER", raising=False)
    write_app(tmp_path, APP)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        server = p.host._forkserver
        assert server is not None and server.alive
        a, a_parent = await pids(p, "a")
        b, b_parent = await pids(p, "b")
        assert a != b and a_parent == b_parent == server._process.pid
        # the fork server is a child of the host, not an isolate of any Worker
        assert psutil.Process(server._process.pid).ppid() == os.getpid()


async def test_without_the_fork_server_isolates_are_fresh_interpreters(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_FORKSERVER", "0")
    write_app(tmp_path, APP)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        assert p.host._forkserver is None
        a, a_parent = await pids(p, "a")
        assert a_parent == os.getpid()  # started by the host itself
        assert "edgelet.runtime.isolate" in " ".join(psutil.Process(a).cmdline())
        # a crashed isolate comes back the same way
        os.kill(a, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not gone(a) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for _ in range(50):
            resp = await p.fetch("/", worker="a")
            if resp.status == 200:
                break
            await asyncio.sleep(0.05)
        new, new_parent = await pids(p, "a")
        assert new != a and new_parent == os.getpid()


WS_APP = {
    "wrangler_like.toml": 'name = "ws"\nmain = "w.py"\n',
    "w.py": """
        from workers import Response, WebSocketPair, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                client, server = WebSocketPair()
                server.accept()
                server.addEventListener("message", lambda event: server.send(f"echo {event.data}"))
                return Response(None, status=101, web_socket=client)
    """,
}


async def test_a_fresh_interpreter_isolate_serves_websockets(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The isolate's module runs as ``python -m edgelet.runtime.isolate``: the runtime the
    WebSocket code finds must be the running one (it was a second, empty copy of the module,
    so every accept() failed without the fork server, or once it had died)."""
    monkeypatch.setenv("EDGELET_FORKSERVER", "0")
    write_app(tmp_path, WS_APP)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        assert p.host._forkserver is None
        ws = await p.websocket("/")
        await ws.send("hi")
        assert await ws.receive() == "echo hi"
        await ws.close()


async def test_a_dead_fork_server_takes_its_isolates_and_the_platform_serves_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGELET_FORKSERVER", raising=False)
    write_app(tmp_path, APP)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        server = p.host._forkserver
        forked, _ = await pids(p, "a")
        os.kill(server._process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not (gone(forked) and not server.alive) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert gone(forked), "an isolate outlived its fork server (PDEATHSIG)"
        assert not server.alive
        # the next requests are served by isolates started as fresh interpreters by the host
        statuses = []
        for _ in range(50):
            resp = await p.fetch("/", worker="a")
            statuses.append(resp.status)
            if resp.status == 200:
                break
            assert resp.status == 503 and "'a'" in await resp.text()  # says which Worker
            await asyncio.sleep(0.05)
        pid, parent = await pids(p, "a")
        assert pid != forked and parent == os.getpid()
        _, b_parent = await pids(p, "b")
        assert b_parent == os.getpid()
