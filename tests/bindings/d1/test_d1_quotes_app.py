"""Our own take on Cloudflare's Python D1 example: a Worker reading a table that
`edgelet d1 execute DB --local --file db_init.sql` filled, as the example's README says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "d1-quotes"


def test_quotes_app_serves_rows_loaded_by_d1_execute(dev, tmp_path):
    app = tmp_path / "d1-quotes"
    shutil.copytree(APP, app)
    for _ in range(2):  # the init file is idempotent, as the original's is
        proc = subprocess.run([sys.executable, "-m", "edgelet.cli", "d1", "execute", "DB", "--local", "--file",
                               "db_init.sql", "--port", "9"], cwd=app, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    s = dev(None, cwd=app)
    everything = s.get("/all").json()
    assert [q["author"] for q in everything] == ["Tim Peters", "Donald Knuth", "Linus Torvalds"]
    assert everything[1]["quote"] == "Premature optimization is the root of all evil."
    seen = set()
    for _ in range(12):
        resp = s.get("/")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
        quote = resp.json()
        assert set(quote) == {"quote", "author"} and quote in everything
        seen.add(quote["author"])
    assert len(seen) > 1  # ORDER BY RANDOM() really varies
