"""``<state folder>/dev.lock``: which ``edgelet dev`` (pid, port) holds a state folder.

Why: two ``dev`` processes on one folder would each run the same queues, alarms and
workflows against the same files; and a CLI command that finds no ``dev`` on ``--port``
should be able to say "a dev on port 8788 holds this folder" instead of silently reading
files under a running platform. The lock is an ``flock`` held for the life of ``dev`` (the
kernel drops it when the process dies, even by SIGKILL, so a stale file never blocks);
the file's JSON says who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

LOCK_NAME = "dev.lock"


@dataclass(frozen=True)
class Holder:
    """The ``edgelet dev`` holding a folder."""

    pid: int
    port: int
    ip: str = "127.0.0.1"


class FolderLocked(RuntimeError):
    """Another ``edgelet dev`` holds the state folder; the message names its pid and port."""

    def __init__(self, folder: Path, holder: Holder | None) -> None:
        self.holder = holder
        who = (f"`edgelet dev` (pid {holder.pid}, port {holder.port})" if holder
               else "another `edgelet dev`")
        super().__init__(
            f"the state folder {folder} is in use by {who}. Stop that one first, or give this "
            f"one its own folder with --persist-to DIR (or --in-memory)")


class DevLock:
    """Held by a running ``dev``: ``acquire`` raises :class:`FolderLocked` when taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self, port: int, ip: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                raise FolderLocked(self.folder, read_holder(self.folder)) from None
            try:  # the holder before us may have removed the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        self._file = f
        self.update(port, ip)

    def update(self, port: int, ip: str) -> None:
        """Record the port once it is known (``--port 0`` learns it after binding)."""
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps({"pid": os.getpid(), "port": port, "ip": ip}))
        self._file.flush()

    def release(self) -> None:
        """Remove the file (still holding the lock, so no one else uses it), then unlock:
        a stopped ``dev`` leaves the state folder as it found it."""
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()  # closing drops the flock
            self._file = None


def read_holder(folder: Path) -> Holder | None:
    """The ``dev`` holding ``folder`` now, or None (no file, or its holder is gone)."""
    path = Path(folder) / LOCK_NAME
    try:
        with open(path, encoding="utf-8") as f:
            try:  # a free lock means the file is stale, whatever it says
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                data: Any = _parse(f.read())
            else:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return None
    except OSError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    return Holder(pid=data["pid"], port=int(data.get("port") or 0), ip=str(data.get("ip") or "127.0.0.1"))


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
