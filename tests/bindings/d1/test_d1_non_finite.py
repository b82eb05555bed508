"""Binding NaN or +-Infinity to a D1 statement. On Cloudflare, workerd's D1 binding sends the
parameters as JSON (``JSON.stringify`` in src/cloudflare/internal/d1-api.ts), which writes
NaN and Infinity as ``null``: the row gets NULL and nothing is said. Before, edgelet stored
NULL for NaN silently, and stored Infinity as a REAL Infinity, which D1 never does (so a
query on it behaved differently once deployed). Now all three are NULL, as on Cloudflare, and
the Worker's log names the statement's parameter, so the silent NULL is seen locally."""

from __future__ import annotations

from typing import Any

CONFIG = """
    name = "app"
    main = "w.py"
    d1_databases = [{ binding = "DB", database_name = "nums" }]
"""

WORKER = r'''
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        db = self.env.DB
        await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v REAL)")
        insert = db.prepare("INSERT INTO t (id, v) VALUES (?, ?)")
        await db.batch([insert.bind(1, float("nan")), insert.bind(2, float("inf")),
                        insert.bind(3, float("-inf")), insert.bind(4, 1.5)])
        rows = (await db.prepare("SELECT id, v, typeof(v) AS type FROM t ORDER BY id").all()).results
        return Response.json([[r["id"], r["v"], r["type"]] for r in rows])
'''


def test_nan_and_infinity_are_stored_as_null_as_on_d1_with_a_warning(dev: Any) -> None:
    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = app.get("/")
    assert r.status_code == 200, r.text
    assert r.json() == [[1, None, "null"], [2, None, "null"], [3, None, "null"], [4, 1.5, "real"]]
    logs = app.wait_for_log("parameter 2 is -inf")
    for value in ("nan", "inf", "-inf"):
        assert (f"env.DB.prepare(...).bind(): parameter 2 is {value}, which D1 stores as NULL (Cloudflare "
                f"sends parameters as JSON, where NaN and Infinity become null)") in logs
    assert "parameter 2 is 1.5" not in logs
