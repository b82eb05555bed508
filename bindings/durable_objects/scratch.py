"""Where object databases live with ``--in-memory``: a scratch folder removed on exit.

Why not SQLite ``:memory:``: an in-memory database dies with the isolate that holds it, so
a Worker reload or crash would erase every object's state, while KV and queue state (held
by the host) survive it. Files in a per-run scratch folder (in ``/dev/shm`` when it exists,
so still RAM) survive isolate restarts and vanish with the platform, which is what
"in memory" promises. Folders left by a platform that was killed are removed at the next
start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "edgelet-do-"


def _base() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_scratch() -> Path:
    base = _base()
    root = Path(base) if base else Path(tempfile.gettempdir())
    for old in root.glob(f"{PREFIX}*"):
        try:
            pid = int(old.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))


def remove_scratch(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
