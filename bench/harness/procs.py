"""The platforms under test, each a process tree started fresh for every round.

Both sides are measured the same way: the server is a child process (its own session, so
the whole tree can be stopped), and ``PeakRSS`` samples the resident set of that process and
all its descendants (edgelet's isolates; Miniflare's workerd) while a workload runs.
"""

from __future__ import annotations

import collections
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
PEERS = BENCH / ".peers"
APPS = BENCH / "apps"
MINIFLARE_SERVER = BENCH / "peers" / "miniflare" / "server.mjs"


class StartError(RuntimeError):
    """A platform did not come up; the message says which and why (its last output lines)."""


def _tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its living descendants ([] once it is gone)."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its living descendants."""
    total = 0.0
    for p in _tree(pid):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants (0 once it is gone)."""
    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakRSS:
    """Samples a process tree's RSS every ``interval`` s in a thread; ``peak_mb`` is the max."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6


class Server:
    """A platform serving HTTP on loopback: ``url``, ``pid``, ``stop()``."""

    side = ""
    url = ""
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, marker: bytes, timeout: float, what: str) -> bytes:
        """Read stdout until a line holding ``marker``; raise StartError with the output if not."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                seen += chunk
                for line in seen.splitlines():
                    if marker in line:
                        return line
            elif self.proc.poll() is not None:
                break
        try:
            code: int | None = self.proc.wait(5)  # its output ended: it is exiting
        except subprocess.TimeoutExpired:
            code = None
        self.stop()
        tail = " | ".join(seen.decode(errors="replace").strip().splitlines()[-3:]) or "no output"
        how = f"exited with status {code}" if code is not None else f"was not ready within {timeout:g} s"
        raise StartError(f"{what} {how}: {tail}")

    def _drain(self) -> None:
        """Keep reading the server's output so a chatty log can never block it; the last
        lines are kept for ``output_tail`` (said when a workload fails)."""
        out = self.proc.stdout
        assert out is not None
        self._tail: collections.deque[str] = collections.deque(maxlen=5)

        def read() -> None:
            for line in iter(out.readline, b""):
                if line.strip():
                    self._tail.append(line.decode(errors="replace").strip())

        threading.Thread(target=read, daemon=True).start()

    def output_tail(self) -> str:
        """The server's last lines of output, or ""."""
        return " | ".join(getattr(self, "_tail", ()))[-400:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in its session
        except ProcessLookupError:
            pass
        self.proc.wait()


class EdgeletServer(Server):
    """``edgelet dev`` on bench/apps/<app>, state persisted in a fresh temporary folder."""

    side = "edgelet"

    def __init__(self, app: str, state_dir: Path, timeout: float = 60,
                 env: dict[str, str] | None = None) -> None:
        from common import free_port
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgelet.cli", "dev", "--port", str(port), "--log-level", "warning",
             "--no-reload", "--persist-to", str(state_dir)],
            cwd=APPS / app, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_ready(b"Ready on", timeout, f"edgelet dev ({app})")
        self._drain()


class MiniflareServer(Server):
    """Miniflare (programmatic API) running bench/peers/miniflare/workers/<workload>.mjs."""

    side = "miniflare"

    def __init__(self, workload: str, state_dir: Path, timeout: float = 60) -> None:
        from common import free_port
        node = shutil.which("node")
        if node is None:
            raise StartError("node is not installed")
        port = free_port()
        env = {**os.environ, "MINIFLARE_HOME": str(PEERS / "miniflare")}
        self.proc = subprocess.Popen([node, str(MINIFLARE_SERVER), workload, str(port), str(state_dir)],
                                     cwd=BENCH, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        line = self._wait_ready(b"ready ", timeout, f"Miniflare ({workload})")
        self.url = line.decode().split("ready ", 1)[1].strip().rstrip("/")
        self._drain()


class UvicornServer(Server):
    """Bare uvicorn (uvloop, httptools, one worker, access log off) on bench/apps/<app>/app.py:
    the same ASGI app edgelet serves through a Worker, with nothing in between."""

    side = "uvicorn"

    def __init__(self, app: str, state_dir: Path, timeout: float = 60) -> None:
        from common import free_port
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--loop", "uvloop",
             "--http", "httptools", "--no-access-log", "--log-level", "info"],
            cwd=APPS / app, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(b"Uvicorn running on", timeout, f"uvicorn ({app})")
        self._drain()


@contextmanager
def state_folder(label: str) -> Iterator[Path]:
    """A fresh temporary state folder for one side of one round, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"edgelet-bench-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
