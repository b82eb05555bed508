"""D1 through a real `edgelet dev`: result shapes, batches, bind types, limits, sessions."""

from __future__ import annotations

import sqlite3

CONFIG = """
    name = "notes"
    main = "w.py"
    [[d1_databases]]
    binding = "DB"
    database_name = "notes-db"
    database_id = "6d1f0c2a-1111-4c3e-9d7a-000000000001"
"""

WORKER = '''
import json
from workers import Response, WorkerEntrypoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, score REAL,
                                  blob BLOB, flag INTEGER);
"""


def err(exc):
    return {"type": type(exc).__name__, "message": str(exc)}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("/", 3)[3]
        db = self.env.DB
        await db.exec(SCHEMA)
        if path == "shapes":
            ins = await db.prepare("INSERT INTO notes (body, score, blob, flag) VALUES (?, ?, ?, ?)") \\
                .bind("hello", 1.5, b"\\x00\\x01", True).run()
            await db.prepare("INSERT INTO notes (body) VALUES (?1)").bind("second").run()
            everything = await db.prepare("SELECT id, body, score, flag FROM notes ORDER BY id").all()
            first = await db.prepare("SELECT * FROM notes WHERE body = ?").bind("hello").first()
            body = await db.prepare("SELECT body FROM notes ORDER BY id DESC").first("body")
            missing = await db.prepare("SELECT * FROM notes WHERE id = -1").first()
            raw = await db.prepare("SELECT id, body FROM notes ORDER BY id").raw()
            raw_names = await db.prepare("SELECT id, body FROM notes ORDER BY id").raw(columnNames=True)
            try:
                await db.prepare("SELECT body FROM notes").first("nope")
                col_err = None
            except Exception as exc:
                col_err = err(exc)
            ex = await db.exec("INSERT INTO notes (body) VALUES ('x'); INSERT INTO notes (body) VALUES ('y');")
            return Response.json({
                "insert": ins, "all": everything, "first": {k: v for k, v in first.items() if k != "blob"},
                "first_attr": first.body,
                "blob_is_bytes": isinstance(first["blob"], bytes), "blob": list(first["blob"]),
                "flag": first.flag, "body": body, "missing": missing, "raw": raw, "raw_names": raw_names,
                "col_err": col_err, "exec": ex, "meta_attr": everything.meta.rows_read,
            })
        if path == "batch":
            before = await db.prepare("SELECT count(*) AS n FROM notes").first("n")
            try:
                await db.batch([
                    db.prepare("INSERT INTO notes (body) VALUES (?)").bind("b1"),
                    db.prepare("INSERT INTO notes (body) VALUES (?)").bind("b2"),
                    db.prepare("INSERT INTO no_such_table (body) VALUES (?)").bind("b3"),
                ])
                failed = None
            except Exception as exc:
                failed = err(exc)
            after_fail = await db.prepare("SELECT count(*) AS n FROM notes").first("n")
            results = await db.batch([
                db.prepare("INSERT INTO notes (body) VALUES (?)").bind("ok1"),
                db.prepare("INSERT INTO notes (body) VALUES (?)").bind("ok2"),
                db.prepare("SELECT body FROM notes WHERE body LIKE 'ok%' ORDER BY id"),
            ])
            try:
                await db.batch([db.prepare("SELECT 1"), "SELECT 2"])
                not_stmt = None
            except TypeError as exc:
                not_stmt = err(exc)
            return Response.json({"before": before, "failed": failed, "after_fail": after_fail,
                                  "results": results, "not_stmt": not_stmt})
        if path == "errors":
            out = {}
            for name, value in [("list", [1]), ("dict", {"a": 1}), ("object", object()), ("huge", 2 ** 64)]:
                try:
                    db.prepare("SELECT ?, ?").bind(1, value)
                    out[name] = None
                except TypeError as exc:
                    out[name] = err(exc)
            for name, sql, params in [
                ("syntax", "SELEC oops", []),
                ("too_long", "SELECT '" + "x" * 100_001 + "'", []),
                ("too_many", "SELECT " + ", ".join("?" * 101), list(range(101))),
                ("begin", "BEGIN TRANSACTION", []),
                ("attach", "ATTACH DATABASE '/tmp/elsewhere.db' AS other", []),
                ("wrong_count", "SELECT ?", [1, 2]),
                ("constraint", "INSERT INTO notes (body) VALUES (NULL)", []),
            ]:
                try:
                    await db.prepare(sql).bind(*params).all()
                    out[name] = None
                except Exception as exc:
                    out[name] = err(exc)
            try:
                await db.exec("INSERT INTO notes (body) VALUES ('e1'); INSERT INTO nowhere VALUES (1);")
                out["exec"] = None
            except Exception as exc:
                out["exec"] = err(exc)
            out["left_by_exec"] = await db.prepare("SELECT count(*) AS n FROM notes WHERE body = 'e1'").first("n")
            ok_long = "SELECT '" + "x" * 99_000 + "' AS v"
            out["just_under"] = len(await db.prepare(ok_long).first("v"))
            out["hundred_params"] = len(await db.prepare("SELECT " + ", ".join("?" * 100)).bind(*range(100)).raw())
            return Response.json(out)
        if path == "session":
            s = db.withSession("first-primary")
            before = s.getBookmark()
            await s.prepare("INSERT INTO notes (body) VALUES ('s')").run()
            b1 = s.getBookmark()
            await s.batch([s.prepare("SELECT count(*) FROM notes")])
            again = db.with_session(b1)
            rows = await again.prepare("SELECT body FROM notes WHERE body = 's'").all()
            return Response.json({"before": before, "b1": b1, "b2": s.get_bookmark(), "resumed": again.getBookmark(),
                                  "rows": rows.results})
        if path == "dump":
            data = await db.dump()
            return Response(data, headers={"content-type": "application/octet-stream"})
        return Response("?", status=404)
'''


def start(dev, *args):
    return dev({"wrangler.toml": CONFIG, "w.py": WORKER}, *args)


def test_result_shapes_match_cloudflare(dev):
    s = start(dev)
    data = s.get("/shapes").json()
    insert = data["insert"]
    assert insert["success"] is True and insert["results"] == []
    meta = insert["meta"]
    assert {"changes", "last_row_id", "duration", "rows_read", "rows_written", "changed_db",
            "size_after"} <= set(meta)
    assert meta["changes"] == 1 and meta["last_row_id"] == 1 and meta["rows_written"] == 1
    assert meta["changed_db"] is True and meta["size_after"] > 0
    assert data["all"]["results"] == [{"id": 1, "body": "hello", "score": 1.5, "flag": 1},
                                      {"id": 2, "body": "second", "score": None, "flag": None}]
    assert data["all"]["meta"]["changed_db"] is False and data["all"]["meta"]["rows_read"] == 2
    assert data["meta_attr"] == 2
    assert data["first"]["body"] == "hello" and data["first_attr"] == "hello"
    assert data["blob_is_bytes"] and data["blob"] == [0, 1]
    assert data["flag"] == 1  # True is stored as 1, as D1 does
    assert data["body"] == "second"
    assert data["missing"] is None
    assert data["raw"] == [[1, "hello"], [2, "second"]]
    assert data["raw_names"] == [["id", "body"], [1, "hello"], [2, "second"]]
    assert data["col_err"]["message"].startswith("D1_COLUMN_NOTFOUND: Column not found (nope)")
    assert data["exec"]["count"] == 2 and data["exec"]["duration"] >= 0


def test_batch_is_one_transaction(dev):
    s = start(dev)
    data = s.get("/batch").json()
    assert data["failed"]["type"] == "D1Error"
    assert data["failed"]["message"].startswith("D1_ERROR: no such table: no_such_table")
    assert data["after_fail"] == data["before"]          # b1 and b2 were rolled back
    results = data["results"]
    assert [r["meta"]["changes"] for r in results[:2]] == [1, 1]
    assert results[2]["results"] == [{"body": "ok1"}, {"body": "ok2"}]
    assert "item 2 is a str" in data["not_stmt"]["message"]


def test_bad_input_is_refused_with_clear_errors(dev):
    s = start(dev)
    data = s.get("/errors").json()
    for name in ("list", "dict", "object", "huge"):
        assert data[name]["type"] == "TypeError", name
        assert "parameter 2" in data[name]["message"], data[name]
    assert "Type 'list' not supported" in data["list"]["message"]
    for name in ("syntax", "too_long", "too_many", "begin", "attach", "wrong_count", "constraint", "exec"):
        assert data[name] is not None, name
        assert data[name]["type"] == "D1Error", (name, data[name])
        assert data[name]["message"].startswith("D1_ERROR: "), (name, data[name])
    assert 'near "SELEC": syntax error' in data["syntax"]["message"]
    assert "SQLITE_TOOBIG" in data["too_long"]["message"] and "100000 bytes" in data["too_long"]["message"]
    assert "101 parameters" in data["too_many"]["message"]
    assert "batch" in data["begin"]["message"]
    assert "ATTACH" in data["attach"]["message"]
    assert "NOT NULL constraint failed: notes.body" in data["constraint"]["message"]
    assert "no such table: nowhere" in data["exec"]["message"]
    assert data["left_by_exec"] == 0                       # exec is all or nothing too
    assert data["just_under"] == 99_000 and data["hundred_params"] == 1


def test_sessions_and_bookmarks(dev):
    s = start(dev)
    data = s.get("/session").json()
    assert data["before"] is None
    assert isinstance(data["b1"], str) and data["b1"]
    assert data["b2"] >= data["b1"]
    assert data["resumed"] == data["b1"]
    assert data["rows"] == [{"body": "s"}]


def test_one_file_per_database_and_dump(dev, tmp_path):
    s = start(dev)
    s.get("/shapes")
    file = tmp_path / ".edgelet" / "state" / "d1" / "6d1f0c2a-1111-4c3e-9d7a-000000000001.sqlite3"
    assert file.is_file()
    dumped = s.get("/dump").content
    assert dumped.startswith(b"SQLite format 3\x00")
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(dumped)
    conn = sqlite3.connect(copy)
    assert [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id")] == ["hello", "second", "x", "y"]
    conn.close()


def test_in_memory_keeps_nothing_on_disk(dev, tmp_path):
    s = start(dev, "--in-memory")
    assert s.get("/shapes").status_code == 200
    assert not (tmp_path / ".edgelet" / "state" / "d1").exists()
    assert s.get("/dump").content.startswith(b"SQLite format 3\x00")


TWO_WORKERS = """
    [[workers]]
    name = "writer"
    main = "writer.py"
    d1_databases = [{ binding = "DB", database_name = "shared", database_id = "shared-id" }]

    [[workers]]
    name = "reader"
    main = "reader.py"
    d1_databases = [{ binding = "STORE", database_name = "shared", database_id = "shared-id" }]
"""


def test_same_database_id_in_two_workers_is_one_database(dev):
    s = dev({
        "wrangler_like.toml": TWO_WORKERS,
        "writer.py": """
            from workers import Response, WorkerEntrypoint
            class Default(WorkerEntrypoint):
                async def fetch(self, request):
                    await self.env.DB.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
                    await self.env.DB.prepare("INSERT OR REPLACE INTO kv VALUES ('a', 'from writer')").run()
                    return Response("ok")
        """,
        "reader.py": """
            from workers import Response, WorkerEntrypoint
            class Default(WorkerEntrypoint):
                async def fetch(self, request):
                    return Response(await self.env.STORE.prepare("SELECT v FROM kv").first("v"))
        """,
    })
    assert s.get("/").text == "ok"
    routes = s.api("GET", "/d1/database")["result"]
    assert [(d["uuid"], d["name"]) for d in routes] == [("shared-id", "shared")]
    assert sorted(b["binding"] for b in routes[0]["bindings"]) == ["DB", "STORE"]
    assert s.get("/", headers={"host": "reader.localhost"}).text == "from writer"
