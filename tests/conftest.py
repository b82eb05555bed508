"""Shared fixtures: a real `edgelet dev` process on a free port, talked to over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGELET = [sys.executable, "-m", "edgelet.cli"]


def non_loopback_ip() -> str | None:
    """An address of this machine that is not loopback (None when it has none): what a test
    of "answers loopback only" connects to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent for UDP connect
            ip = probe.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevServer:
    """A running `edgelet dev` subprocess; ``url`` is its base address (``port`` 0: the
    kernel picks a free one, read back from the "Ready on" line)."""

    def __init__(self, cwd: Path, args: list[str], port: int) -> None:
        self.cwd = cwd
        self.args = args
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"dev-{port}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> DevServer:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*EDGELET, "dev", "--port", str(self.port), *self.args], cwd=self.cwd,
            stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if b"Ready on" in line:
                # with port 0 the kernel chose the port: the line names it
                self.port = int(re.search(rb":(\d+)\s*$", line.rstrip()).group(1))  # type: ignore[union-attr]
                self.url = f"http://127.0.0.1:{self.port}"
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"edgelet dev did not start (exit {self.proc.poll()}):\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once ``text`` is in it (or as it is after ``timeout``: the caller asserts)."""
        deadline = time.monotonic() + timeout
        while text not in (logs := self.logs()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return logs

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the control API and return the envelope as a dict."""
        resp = httpx.request(method, f"{self.url}/cdn-cgi/edgelet/api{path}", timeout=30, **kwargs)
        return resp.json()

    def kill(self) -> None:
        """SIGKILL the whole platform (host first; isolates die with it)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # any isolate left behind
            except (ProcessLookupError, PermissionError):
                pass
        if getattr(self, "_log", None):
            self._log.close()


#: a module for test Workers: add it to an app's files (``{**WORKER_HELPERS, "w.py": ...}``)
#: and import from it in the Worker (``from worker_helpers import error_of``)
WORKER_HELPERS = {"worker_helpers.py": '''
async def error_of(coro):
    """What awaiting ``coro`` raised, as ``"Type: message"`` (None if it did not raise): a
    Worker answers it so the test can check the error a user would see."""
    try:
        await coro
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
'''}


def write_app(folder: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text, dedented) under ``folder``."""
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Any]:
    """``dev(files, *args)`` writes an app into a temp folder and starts `edgelet dev` on it."""
    servers: list[DevServer] = []

    def start(files: dict[str, str] | None = None, *args: str, cwd: Path | None = None,
              port: int | None = None) -> DevServer:
        folder = cwd or tmp_path
        if files:
            write_app(folder, files)
        server = DevServer(folder, list(args), port or 0)  # 0: no race for a port between workers
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``shared_dev(files, *args)``: like ``dev``, but the server lives for the whole module, so
    tests that only read from one app share one ``edgelet dev`` instead of starting their own.
    The same files and arguments give the server already running; tests that change what
    others would see (state, reloads, restarts) keep using ``dev``."""
    servers: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], DevServer] = {}

    def start(files: dict[str, str], *args: str) -> DevServer:
        key = (tuple(sorted(files.items())), args)
        if key not in servers:
            folder = write_app(tmp_path_factory.mktemp("shared-dev"), files)
            servers[key] = DevServer(folder, list(args), 0).start()
        return servers[key]

    yield start
    for server in servers.values():
        server.stop()
