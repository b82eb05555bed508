"""The control API's D1 query routes return at most 10,000 rows or 8 MiB of values per
statement, marked ``truncated`` with a message saying how to page. Before, ``SELECT *`` over a
large table built the whole result in the host's memory (then as JSON), and a recursive CTE
without an end never answered, stalling every Worker on the host's event loop."""

from __future__ import annotations

from typing import Any

import httpx

CONFIG = """
    name = "app"
    main = "w.py"
    d1_databases = [{ binding = "DB", database_name = "big" }]
"""

WORKER = r'''
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
'''

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


def query(app: Any, route: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{app.url}/cdn-cgi/edgelet/api/d1/database/DB/{route}", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    envelope: dict[str, Any] = resp.json()
    return envelope


def test_results_are_capped_and_marked_and_writes_are_whole(dev: Any) -> None:
    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    setup = ("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10005) "
             "INSERT INTO t (id, v) SELECT x, 'row' FROM c")
    query(app, "query", {"sql": setup})

    # an endless CTE answers (before: the request never did) with the first 10,000 rows
    endless = query(app, "raw", {"sql": ENDLESS})
    result = endless["result"][0]
    assert result["truncated"] is True and len(result["results"]["rows"]) == 10_000
    assert result["results"]["rows"][-1] == [10_000]
    assert endless["messages"] == [{"code": 7501, "message": (
        "statement 1: only its first 10,000 rows are returned; the control API returns at most 10,000 rows "
        "or 8 MiB of values per statement. Page with LIMIT and OFFSET, or select fewer columns")}]
    # the statement's own result carries its message too (the explorer reads it there)
    assert result["truncation"] == {"rows": 10_000, "message": endless["messages"][0]["message"]}

    # a batch: only the statement that overflowed is marked, and the write after it is kept
    batch = query(app, "query", {"batch": [{"sql": "SELECT count(*) AS n FROM t"},
                                           {"sql": "UPDATE t SET v = 'seen' RETURNING id"},
                                           {"sql": "SELECT id FROM t LIMIT 3"}]})
    counted, updated, small = batch["result"]
    assert counted["truncated"] is False and counted["results"] == [{"n": 10_005}]
    assert updated["truncated"] is True and len(updated["results"]) == 10_000
    assert small["truncated"] is False and [r["id"] for r in small["results"]] == [1, 2, 3]
    assert [m["message"].split(":")[0] for m in batch["messages"]] == ["statement 2"]
    assert counted["truncation"] is None and small["truncation"] is None
    assert updated["truncation"]["message"] == batch["messages"][0]["message"]
    # RETURNING was cut short, the UPDATE was not: every row changed
    seen = query(app, "query", {"sql": "SELECT count(*) AS n FROM t WHERE v = 'seen'"})
    assert seen["result"][0]["results"] == [{"n": 10_005}] and seen["messages"] == []

    # the byte cap: 1 MB values, so the 9th row would pass 8 MiB
    query(app, "query", {"sql": "CREATE TABLE wide (v TEXT)"})
    query(app, "query", {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 12) "
                                "INSERT INTO wide SELECT printf('%.*c', 1000000, 'w') FROM c"})
    wide = query(app, "raw", {"sql": "SELECT v FROM wide"})["result"][0]
    assert wide["truncated"] is True and len(wide["results"]["rows"]) == 8
    assert len(wide["results"]["rows"][0][0]) == 1_000_000

    # a Worker's own queries are not capped by the control API's limit
    assert app.get("/").text == "ok"


def test_the_cli_against_an_in_memory_dev_says_when_rows_were_cut(dev: Any) -> None:
    import os
    import subprocess
    import sys

    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    port = str(app.port)
    run = subprocess.run([sys.executable, "-m", "edgelet.cli", "d1", "execute", "DB", "--command", ENDLESS,
                          "--json", "--port", port], cwd=app.cwd, capture_output=True, timeout=120,
                         env={**os.environ, "NO_COLOR": "1"})
    assert run.returncode == 0, run.stderr
    assert b"statement 1 returned more rows than `edgelet dev` hands out; only the first 10,000 are shown" \
        in run.stderr
