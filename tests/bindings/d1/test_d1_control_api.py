"""D1's control-API routes, shaped like Cloudflare's REST API."""

from __future__ import annotations

CONFIG = """
    name = "api"
    main = "w.py"
    d1_databases = [{ binding = "DB", database_name = "api-db", database_id = "a1b2c3d4-0000-4000-8000-000000000042" }]
"""

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(str(await self.env.DB.prepare("SELECT count(*) AS n FROM t").first("n")))
"""

DB_ID = "a1b2c3d4-0000-4000-8000-000000000042"


def test_list_info_and_query(dev):
    s = dev({"wrangler.toml": CONFIG, "w.py": WORKER})
    listed = s.api("GET", "/d1/database")
    assert listed["success"] is True and listed["errors"] == []
    assert [(d["uuid"], d["name"]) for d in listed["result"]] == [(DB_ID, "api-db")]

    for name in (DB_ID, "api-db", "DB"):  # id, database_name or binding
        info = s.api("GET", f"/d1/database/{name}")
        assert info["result"]["uuid"] == DB_ID, name

    made = s.api("POST", f"/d1/database/{DB_ID}/query",
                 json={"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a');"})
    assert made["success"] is True and len(made["result"]) == 2
    assert made["result"][1]["meta"]["changes"] == 1 and made["result"][1]["meta"]["last_row_id"] == 1

    inserted = s.api("POST", "/d1/database/DB/query", json={"sql": "INSERT INTO t (v) VALUES (?)", "params": ["b"]})
    assert inserted["result"][0]["success"] is True
    assert s.get("/").text == "2"   # the Worker sees what the API wrote

    rows = s.api("POST", "/d1/database/DB/query", json={"sql": "SELECT v FROM t WHERE id > ?", "params": [1]})
    assert rows["result"][0]["results"] == [{"v": "b"}]
    raw = s.api("POST", "/d1/database/DB/raw", json={"sql": "SELECT id, v FROM t ORDER BY id"})
    assert raw["result"][0]["results"] == {"columns": ["id", "v"], "rows": [[1, "a"], [2, "b"]]}


def test_errors_use_the_envelope_and_store_nothing(dev):
    s = dev({"wrangler.toml": CONFIG, "w.py": WORKER})
    s.api("POST", "/d1/database/DB/query", json={"sql": "CREATE TABLE t (v TEXT)"})
    bad = s.api("POST", "/d1/database/DB/query",
                json={"sql": "INSERT INTO t VALUES ('x'); INSERT INTO t VALUES (1, 2, 3);"})
    assert bad["success"] is False and bad["result"] is None
    assert bad["errors"][0]["code"] == 7500
    assert bad["errors"][0]["message"].startswith("D1_ERROR: table t has 1 columns but 3 values were supplied")
    assert s.get("/").text == "0"

    missing = s.api("GET", "/d1/database/nope")
    assert missing["success"] is False and "no D1 database with the binding, name or id 'nope'" in \
        missing["errors"][0]["message"]
    empty = s.api("POST", "/d1/database/DB/query", json={"params": []})
    assert empty["success"] is False and "sql" in empty["errors"][0]["message"]
    mixed = s.api("POST", "/d1/database/DB/query", json={"sql": "SELECT ?; SELECT ?", "params": [1]})
    assert "params apply to one statement" in mixed["errors"][0]["message"]
