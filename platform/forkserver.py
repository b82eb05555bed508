"""Host side of the fork server (see ``edgelet.runtime.forkserver``).

``ForkServer.spawn`` returns a :class:`ForkedProcess` with the part of
``asyncio.subprocess.Process`` the isolate supervisor uses (``pid``, ``returncode``,
``wait()``, ``kill()``), so the supervisor does not care how its process was made.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

log = logging.getLogger("edgelet.isolate")


class ForkedProcess:
    def __init__(self, server: ForkServer, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server
        self._exited = asyncio.get_running_loop().create_future()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _SpawnedProcess:
    """The part of ``asyncio.subprocess.Process`` ForkServer uses, for a child started with
    ``os.posix_spawn`` (:mod:`edgelet.prestart`) before any event loop existed.

    Its exit is read with ``waitpid`` on its own pid only, so the event loop's child
    watcher (which also waits on its own pids only) never races it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._code: int | None = None

    @property
    def returncode(self) -> int | None:
        if self._code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone all the same
                self._code = -signal.SIGKILL
            else:
                if pid:
                    self._code = os.waitstatus_to_exitcode(status)
        return self._code

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        while self.returncode is None:  # only at stop, after a SIGKILL: a few turns at most
            await asyncio.sleep(0.005)
        assert self._code is not None
        return self._code


class ForkServer:
    """One fork-server process per host; isolates are forked from it."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._process: asyncio.subprocess.Process | _SpawnedProcess | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._ready: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Adopt the fork server ``edgelet dev`` launched at its first line
        (:mod:`edgelet.prestart`), else start one; return once it has imported the runtime."""
        from edgelet import prestart
        early = prestart.take()
        if early is not None:
            self._process = _SpawnedProcess(early[0])
            host_sock = early[1]
        else:
            host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edgelet.runtime.forkserver", str(child_sock.fileno()),
                pass_fds=(child_sock.fileno(),), stdin=asyncio.subprocess.DEVNULL)
            child_sock.close()
        host_sock.setblocking(False)
        self._sock = host_sock
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(host_sock.fileno(), self._on_readable)
        await asyncio.wait_for(self._ready, 30)

    @property
    def alive(self) -> bool:
        return self._sock is not None and self._process is not None \
            and self._process.returncode is None

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message: dict[str, Any] = json.loads(data)
            if message.get("ready"):
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            elif "exit" in message:
                child = self._children.pop(message["exit"], None)
                if child is not None:
                    child._set_exit(message["code"])
                else:
                    self._early_exits[message["exit"]] = message["code"]
            elif "pid" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message["pid"])

    def _lost(self) -> None:
        """The fork server died: its children die with it (PDEATHSIG); say so to waiters."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for child in self._children.values():
            child._set_exit(-signal.SIGKILL)
        self._children.clear()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the fork server exited"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError("the fork server failed to start"))

    async def spawn(self, child_fd: int, env: dict[str, str], memory_cap: int,
                    handoff_fd: int | None = None) -> ForkedProcess:
        """Fork an isolate on channel socket ``child_fd`` (and handoff socket ``handoff_fd``,
        which the isolate finds in EDGELET_HANDOFF_FD: edgelet.handoff)."""
        if self._sock is None:
            raise ConnectionError("the fork server is not running")
        request_id = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        payload = json.dumps({"id": request_id, "env": env, "memory_cap": memory_cap}).encode()
        socket.send_fds(self._sock, [payload], [child_fd] if handoff_fd is None else [child_fd, handoff_fd])
        pid = await asyncio.wait_for(future, 30)
        child = ForkedProcess(self, pid)
        code = self._early_exits.pop(pid, None)
        if code is not None:
            child._set_exit(code)
        else:
            self._children[pid] = child
        return child

    async def stop(self) -> None:
        for child in list(self._children.values()):
            child.kill()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._process is not None and self._process.returncode is None:
            try:
                self._process.kill()
            except ProcessLookupError:
                pass
            await self._process.wait()
