"""A Durable Object's SQL refuses a string, BLOB or row over 2 MB, as Cloudflare's SQLite-backed
objects do (durable-objects/platform/limits). Before, a 3 MB blob was stored locally and the
same code failed once deployed."""

from __future__ import annotations

from typing import Any

CONFIG = """
    name = "app"
    main = "w.py"
    durable_objects.bindings = [{ name = "FILES", class_name = "Files" }]
    migrations = [{ tag = "v1", new_sqlite_classes = ["Files"] }]
"""

WORKER = r'''
from workers import DurableObject, Response, WorkerEntrypoint


class Files(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS f (id INTEGER PRIMARY KEY, data BLOB)")

    async def store(self, size):
        try:
            self.ctx.storage.sql.exec("INSERT INTO f (data) VALUES (?)", b"x" * size)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "stored"

    async def count(self):
        return self.ctx.storage.sql.exec("SELECT count(*) AS n FROM f").one()["n"]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        stub = self.env.FILES.getByName("one")
        return Response.json({"big": await stub.store(3_000_000), "fits": await stub.store(1_500_000),
                              "rows": await stub.count()})
'''


def test_sql_values_over_2_mb_are_refused(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = s.get("/", timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert "string or blob too big" in out["big"], out
    assert "holds at most 2,000,000 bytes, as on Cloudflare" in out["big"]
    assert "keep large values in R2" in out["big"]
    assert out["fits"] == "stored" and out["rows"] == 1
