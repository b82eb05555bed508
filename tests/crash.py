"""Crash-test helpers: SIGKILL a real ``edgelet dev`` and start it again on the same state folder.

Every durability test (KV, D1, R2, queues and their dead-letter queue, Durable Object alarms,
Workflows steps, ``createBatch`` and rollbacks) does the same three things: keep requests
flowing at a running platform, SIGKILL it at some moment, start a new ``edgelet dev`` on the
same folder and check what survived. The killing and restarting live here, once:

    s = dev(files, *ARGS)
    sender = Sender(lambda i: f"/note/{i}")
    with sender.running(s):
        ...wait for the moment...
        kill_group(s)                 # or s.kill(): the host alone, its isolates die with it
    s = restart(dev, s)
    assert sender.acked <= what_the_new_platform_has

A Worker that records its side effects embeds ``APPEND`` (``append(path, line)``) in its
script: one ``write()`` of a short line in append mode, so the log holds whole lines even when
the process is killed in the middle of a request.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

#: ``edgelet dev`` arguments of a crash test: state on disk (in ``<cwd>/state``), the
#: resume/recovery lines in the log, and no reloader (a second process in the group)
ARGS = ("--persist-to", "state", "--log-level", "info", "--no-reload")

#: a Worker-side ``append(path, line)`` for scripts that log their side effects; the script
#: must ``import os``
APPEND = '''
def append(path, line):
    # one write() of a short line in append mode: whole lines even across kills
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
'''


def kill_group(s: Any) -> None:
    """SIGKILL the platform's whole process group at once: host, fork server, isolates
    (``s.kill()`` kills the host alone and lets its isolates notice)."""
    os.killpg(s.proc.pid, signal.SIGKILL)
    s.proc.wait(10)


def restart(dev: Callable[..., Any], s: Any, *args: str) -> Any:
    """A new ``edgelet dev`` on the killed one's folder, with its arguments unless ``args``."""
    return dev(None, *(args or s.args), cwd=s.cwd)


def kill_and_restart(dev: Callable[..., Any], s: Any, *, down: float = 0.0) -> Any:
    """SIGKILL ``s`` (the host), leave the folder alone for ``down`` seconds, start again."""
    s.kill()
    if down:
        time.sleep(down)
    return restart(dev, s)


def lines(path: Path) -> list[str]:
    """The lines a Worker appended to ``path`` so far (none before the first)."""
    return path.read_text().splitlines() if path.exists() else []


def wait_until(ready: Callable[[], Any], *, timeout: float, what: str | Callable[[], str],
               every: float = 0.01) -> Any:
    """Poll ``ready()`` until it is truthy and return it; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := ready()):
        if time.monotonic() >= deadline:
            raise AssertionError(what() if callable(what) else what)
        time.sleep(every)
    return value


class Sender:
    """Numbered requests sent one after another from a thread while the test waits to kill.

    ``path(i)`` is the path of request ``i``; a 200 answer adds ``i`` to ``acked``. The
    request a kill cuts off (an HTTP error) goes to ``cut`` and ends the thread. Numbers go on
    across rounds, so each request is sent once over the whole test.
    """

    def __init__(self, path: Callable[[int], str], *, pause: float = 0.0) -> None:
        self.path = path
        self.pause = pause
        self.acked: set[int] = set()
        self.cut: set[int] = set()
        self.next = 0

    def _send(self, url: str, stop: threading.Event) -> None:
        while not stop.is_set():
            i, self.next = self.next, self.next + 1
            try:
                if httpx.get(url + self.path(i), timeout=30).status_code == 200:
                    self.acked.add(i)
            except httpx.HTTPError:
                self.cut.add(i)
                return
            if self.pause:
                time.sleep(self.pause)

    @contextmanager
    def running(self, s: Any) -> Iterator[Sender]:
        """Send to ``s`` until the block ends (kill ``s`` inside it: the thread ends with it)."""
        stop = threading.Event()
        thread = threading.Thread(target=self._send, args=(s.url, stop), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(30)
