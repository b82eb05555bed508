"""Run a command on a pseudo-terminal, as a person at a terminal would (progress bars).

``run_in_terminal`` gives the command a pty (120 x 30) for stdin, stdout and stderr, with
``TERM=xterm-256color`` and without ``NO_COLOR`` unless asked, and returns everything it
wrote. ``BAR`` is the glyph rich draws its progress bars with: a test asserts it is there on
a terminal and absent when the same command is piped.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

#: rich's bar glyph (``BarColumn``)
BAR = "━"


def run_in_terminal(argv: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120,
                    interrupt_when: Callable[[str], bool] | None = None) -> tuple[int, str]:
    """(exit code, output) of ``argv`` on a pty; ``interrupt_when(output so far)`` True sends
    SIGINT once (for a long-running command such as ``edgelet dev``)."""
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environ.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "30"})
    environ.update(env or {})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=environ,
                            start_new_session=True)
    os.close(slave)
    out = bytearray()
    interrupted = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the pty's other end has closed it
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                continue  # drain what is left until EIO
            if interrupt_when is not None and not interrupted and interrupt_when(out.decode(errors="replace")):
                os.killpg(proc.pid, signal.SIGINT)
                interrupted = True
        else:
            raise AssertionError(f"{argv} did not finish in {timeout} s; output:\n{out.decode(errors='replace')}")
        return proc.wait(30), out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
