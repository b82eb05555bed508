"""`edgelet dev` in a real terminal: a tmux session per test (issue 19's hotkeys, table, pdb)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import EDGELET

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """One tmux session running one command; ``screen()`` is what a person would see."""

    def __init__(self, name: str, cwd: Path, socket_dir: Path) -> None:
        self.name = name
        self.cwd = cwd
        self.socket = str(socket_dir / "tmux.sock")

    def _tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True,
                              timeout=30)

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> Terminal:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        command = f"env {exports} {shlex.join(argv)}; echo EXITED $?; sleep 30"
        self._tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", "-c",
                   str(self.cwd), command)
        return self

    def screen(self, colours: bool = False, history: bool = True) -> str:
        args = ["capture-pane", "-p", "-t", self.name, *(["-S", "-200"] if history else [])]
        if colours:
            args.append("-e")
        return self._tmux(*args).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.screen())
            if match:
                return match
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never appeared; the screen:\n{self.screen()}")

    def close(self) -> None:
        self._tmux("kill-server")


def dev_terminal(tmp_path: Path) -> Callable[..., Terminal]:
    """A factory (used by the ``term`` fixtures): ``start(*dev_args, cwd=..., env=...)``."""
    sessions: list[Terminal] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Terminal:
        sock_dir = tmp_path / f"tmux{len(sessions)}"
        sock_dir.mkdir()
        term = Terminal(f"dev{len(sessions)}", cwd or tmp_path, sock_dir)
        sessions.append(term)
        base_env = {"PATH": os.environ.get("PATH", ""), "TERM": "xterm-256color",
                    "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        return term.start([*EDGELET, "dev", *args], {**base_env, **(env or {})})

    start.sessions = sessions  # type: ignore[attr-defined]
    return start
