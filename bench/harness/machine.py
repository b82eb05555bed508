"""What ran where: the machine and every version that shapes the figures."""

from __future__ import annotations

import json
import os
import platform as _platform
import re
import sqlite3
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import psutil

from .procs import PEERS, ROOT


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return _platform.processor() or "unknown CPU"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else "unknown CPU"


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {cpu_model()}, {mem:.0f} GiB, {_platform.system()} {_platform.release()}"


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def _package_version(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        found["edgelet"] = metadata.version("edgelet")
    except metadata.PackageNotFoundError:
        found["edgelet"] = "?"
    rev = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    if rev:
        dirty = _run("git", "-C", str(ROOT), "status", "--porcelain")
        found["edgelet"] += f" (git {rev}{' + uncommitted changes' if dirty else ''})"
    found["Python"] = _platform.python_version()
    found["SQLite"] = sqlite3.sqlite_version
    modules = PEERS / "miniflare" / "node_modules"
    for name, path in (("miniflare", modules / "miniflare" / "package.json"),
                       ("workerd", modules / "workerd" / "package.json")):
        v = _package_version(path)
        if v:
            found[name] = v
    node = _run("node", "--version")
    if node:
        found["Node.js"] = node.lstrip("v")
    dbos_py = PEERS / "dbos-venv" / "bin" / "python"
    if dbos_py.exists():
        v = _run(str(dbos_py), "-c", "from importlib.metadata import version; print(version('dbos'))")
        if v:
            found["DBOS Transact"] = v
    wrk = _run("wrk", "-v")
    m = re.search(r"wrk (?:debian/)?([\d.]+)", wrk)
    if m:
        found["wrk"] = m.group(1)
    return found


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
