"""D1's "Maximum string, BLOB or table row size" (2,000,000 bytes, developers.cloudflare.com
/d1/platform/limits/). Before, edgelet stored a 3 MB blob that D1 refuses, so an app that
worked locally failed once deployed; now the statement fails with SQLITE_TOOBIG, a message
saying the limit and what to do, and nothing written."""

from __future__ import annotations

from typing import Any

from conftest import WORKER_HELPERS

CONFIG = """
    name = "app"
    main = "w.py"
    d1_databases = [{ binding = "DB", database_name = "files" }]
"""

WORKER = r'''
from workers import Response, WorkerEntrypoint
from worker_helpers import error_of


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        db = self.env.DB
        await db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, a BLOB, b BLOB)")
        insert = db.prepare("INSERT INTO blobs (a, b) VALUES (?, ?)")
        out = {
            "value": await error_of(insert.bind(b"x" * 2_000_001, None).run()),
            "row": await error_of(insert.bind(b"x" * 1_200_000, "y" * 1_200_000).run()),
            "computed": await error_of(db.prepare("SELECT zeroblob(3000000) AS z").first()),
            "batch": await error_of(db.batch([insert.bind(b"ok", None), insert.bind(b"x" * 3_000_000, None)])),
            "fits": await error_of(insert.bind(b"x" * 1_900_000, None).run()),
        }
        out["rows"] = await db.prepare("SELECT count(*) AS n FROM blobs").first("n")
        return Response.json(out)
'''


def test_values_and_rows_over_2_mb_are_refused_as_on_d1(dev: Any) -> None:
    s = dev({**WORKER_HELPERS, "wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = s.get("/", timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    for case in ("value", "row", "computed", "batch"):
        message = out[case]
        assert message is not None and message.startswith("D1Error: D1_ERROR: string or blob too big"), (case, out)
        assert "at most 2,000,000 bytes per string, BLOB or row" in message and "SQLITE_TOOBIG" in message
        assert "keep large values in R2" in message
    assert out["fits"] is None
    assert out["rows"] == 1  # the refused statements (and the whole batch) wrote nothing
