"""The app the D1 command-line tests run `edgelet d1 ...` in (shared by test_d1_cli.py and
test_d1_progress.py): a Worker with one D1 binding and a migrations folder, as wrangler
projects lay it out, and the way those tests call the CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import EDGELET

CONFIG = """
    name = "shop"
    main = "w.py"
    [[d1_databases]]
    binding = "DB"
    database_name = "shop-db"
    database_id = "0b6a8c52-2222-4d1e-8f00-00000000abcd"
    migrations_dir = "db/migrations"
"""


def d1(cwd: Path, *args: str, ok: bool = True,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``edgelet d1 *args`` in ``cwd``; with ``ok``, fail the test unless it exits 0.
    ``--port 9`` (nothing answers there) unless the args name a port: the command uses the
    state folder, not a running dev."""
    port = [] if "--port" in args else ["--port", "9"]
    proc = subprocess.run([*EDGELET, "d1", *args, *port], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=env)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc
