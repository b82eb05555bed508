"""`edgelet d1 ...` as wrangler scripts call it: with and without a running `edgelet dev`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EDGELET, write_app
from d1_app import CONFIG, d1
from ptyrun import BAR, run_in_terminal

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            rows = await self.env.DB.prepare("SELECT name, price FROM items ORDER BY price").all()
            return Response.json(rows.results)
"""

INIT_SQL = """
    -- a schema and a few rows, as `wrangler d1 execute DB --local --file` takes them
    CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price INTEGER);
    INSERT INTO items (name, price) VALUES ('pear', 3), ('apple; red', 2);
    INSERT INTO items (name, price) VALUES ('fig', 5);
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    write_app(tmp_path, {"wrangler.toml": CONFIG, "w.py": WORKER, "init.sql": INIT_SQL})
    return tmp_path


def test_execute_file_then_the_worker_sees_the_rows(app, dev):
    d1(app, "execute", "DB", "--local", "--file", "init.sql")
    out = d1(app, "execute", "shop-db", "--command", "SELECT count(*) AS n FROM items", "--json").stdout
    assert json.loads(out)[0]["results"] == [{"n": 3}]
    s = dev(None, cwd=app)
    assert s.get("/").json() == [{"name": "apple; red", "price": 2}, {"name": "pear", "price": 3},
                                 {"name": "fig", "price": 5}]
    # with dev running, the command reaches the same database (by id this time)
    d1(app, "execute", "0b6a8c52-2222-4d1e-8f00-00000000abcd", "--command",
       "INSERT INTO items (name, price) VALUES ('kiwi', 1)", "--port", str(s.port))
    assert s.get("/").json()[0] == {"name": "kiwi", "price": 1}


def test_execute_against_an_in_memory_dev_goes_through_the_api(app, dev):
    s = dev(None, "--in-memory", cwd=app)
    d1(app, "execute", "DB", "--file", "init.sql", "--port", str(s.port))
    assert len(s.get("/").json()) == 3
    table = d1(app, "execute", "DB", "--command", "SELECT name FROM items WHERE price > 2 ORDER BY name",
               "--port", str(s.port)).stdout
    assert table.split() == ["NAME", "fig", "pear"]
    assert not (app / ".edgelet" / "state" / "d1").exists()


def test_a_bad_file_stores_nothing_and_names_the_statement(app):
    d1(app, "execute", "DB", "--file", "init.sql")
    (app / "bad.sql").write_text("INSERT INTO items (name) VALUES ('x');\nINSERT INTO nope VALUES (1);\n")
    proc = d1(app, "execute", "DB", "--file", "bad.sql", ok=False)
    assert proc.returncode != 0
    assert "D1_ERROR: no such table: nope" in proc.stderr and "statement 2 of 2" in proc.stderr
    out = d1(app, "execute", "DB", "--command", "SELECT count(*) AS n FROM items", "--json").stdout
    assert json.loads(out)[0]["results"] == [{"n": 3}]


def test_a_long_file_shows_progress_and_commits_once(app):
    lines = ["CREATE TABLE big (n INTEGER);"] + [f"INSERT INTO big VALUES ({i});" for i in range(3000)]
    (app / "big.sql").write_text("\n".join(lines))
    proc = d1(app, "execute", "DB", "--file", "big.sql")
    assert "3001 commands executed successfully" in proc.stderr
    assert "3001/3001" not in proc.stderr and BAR not in proc.stderr  # piped: no bar
    (app / "again.sql").write_text("\n".join(["CREATE TABLE big2 (n INTEGER);"] + lines[1:]).replace("big ", "big2 "))
    code, out = run_in_terminal([*EDGELET, "d1", "execute", "DB", "--file", "again.sql", "--port", "9"], app)
    assert code == 0 and BAR in out and "3001/3001" in out, out  # on a terminal: the bar
    out = d1(app, "execute", "DB", "--command", "SELECT count(*) AS n, sum(n) AS s FROM big", "--json").stdout
    assert json.loads(out)[0]["results"] == [{"n": 3000, "s": sum(range(3000))}]


def test_migrations_create_list_apply_twice_applies_once(app):
    d1(app, "migrations", "create", "DB", "create items")
    first = app / "db" / "migrations" / "0001_create_items.sql"
    assert first.read_text().startswith("-- Migration number: 0001")
    with first.open("a") as fh:
        fh.write("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n")
    d1(app, "migrations", "create", "shop-db", "add price")
    second = app / "db" / "migrations" / "0002_add_price.sql"
    with second.open("a") as fh:
        fh.write("ALTER TABLE items ADD COLUMN price INTEGER;\nINSERT INTO items (name, price) VALUES ('x', 1);\n")
    listed = d1(app, "migrations", "list", "DB").stdout
    assert "0001_create_items.sql" in listed and "0002_add_price.sql" in listed

    applied = d1(app, "migrations", "apply", "DB", "--local").stdout
    assert "0001_create_items.sql" in applied and "2 migrations applied" in applied
    again = d1(app, "migrations", "apply", "DB", "--local").stdout
    assert "No migrations to apply" in again
    assert "No migrations to apply" in d1(app, "migrations", "list", "DB").stdout

    out = d1(app, "execute", "DB", "--command", "SELECT id, name, applied_at FROM d1_migrations ORDER BY id",
             "--json").stdout
    rows = json.loads(out)[0]["results"]
    assert [(r["id"], r["name"]) for r in rows] == [(1, "0001_create_items.sql"), (2, "0002_add_price.sql")]
    assert all(len(r["applied_at"]) == 19 for r in rows)  # CURRENT_TIMESTAMP: "YYYY-MM-DD HH:MM:SS"
    out = d1(app, "execute", "DB", "--command", "SELECT count(*) AS n FROM items", "--json").stdout
    assert json.loads(out)[0]["results"] == [{"n": 1}]  # the INSERT ran once


def test_a_failing_migration_rolls_back_alone(app):
    folder = app / "db" / "migrations"
    write_app(folder, {"0001_ok.sql": "CREATE TABLE a (x);",
                   "0002_bad.sql": "CREATE TABLE b (x);\nINSERT INTO zz VALUES (1);"})
    proc = d1(app, "migrations", "apply", "DB", ok=False)
    assert "Migration 0002_bad.sql failed" in proc.stderr and "no such table: zz" in proc.stderr
    out = d1(app, "execute", "DB", "--command",
             "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b')", "--json").stdout
    assert json.loads(out)[0]["results"] == [{"name": "a"}]
    assert "0002_bad.sql" in d1(app, "migrations", "list", "DB").stdout


def test_export_round_trips_through_execute_file(app, tmp_path):
    d1(app, "execute", "DB", "--file", "init.sql")
    d1(app, "execute", "DB", "--command", "CREATE INDEX items_price ON items (price)")
    d1(app, "export", "DB", "--output", "dump.sql", "--local")
    text = (app / "dump.sql").read_text()
    assert text.startswith("PRAGMA defer_foreign_keys=TRUE;")
    assert "INSERT INTO \"items\" VALUES(2,'apple; red',2);" in text
    assert "CREATE INDEX items_price" in text

    other = tmp_path / "other"
    write_app(other, {"wrangler.toml": CONFIG.replace("0b6a8c52", "99999999"), "w.py": WORKER})
    (other / "dump.sql").write_text(text)
    d1(other, "execute", "DB", "--file", "dump.sql")
    out = d1(other, "execute", "DB", "--command", "SELECT name FROM items ORDER BY id", "--json").stdout
    assert [r["name"] for r in json.loads(out)[0]["results"]] == ["pear", "apple; red", "fig"]

    d1(app, "export", "DB", "--output", "schema.sql", "--no-data")
    assert "INSERT" not in (app / "schema.sql").read_text()
    proc = d1(app, "export", "DB", "--output", "x.sql", "--table", "nope", ok=False)
    assert "no table named 'nope'" in proc.stderr and not (app / "x.sql").exists()


def test_list_and_info(app):
    d1(app, "execute", "DB", "--file", "init.sql")
    rows = json.loads(d1(app, "list", "--json").stdout)
    assert [(r["uuid"], r["name"], r["num_tables"]) for r in rows] == [
        ("0b6a8c52-2222-4d1e-8f00-00000000abcd", "shop-db", 1)]
    info = json.loads(d1(app, "info", "shop-db", "--json").stdout)
    assert info["uuid"] == "0b6a8c52-2222-4d1e-8f00-00000000abcd" and info["file_size"] > 0
    assert info["bindings"] == [{"worker": "shop", "binding": "DB"}]
    assert "shop-db" in d1(app, "info", "DB").stdout


def test_unknown_database_is_a_clear_error(app):
    proc = d1(app, "execute", "NOPE", "--command", "SELECT 1", ok=False)
    assert proc.returncode != 0
    assert "no D1 database with the binding, name or id 'NOPE'" in proc.stderr and "shop-db" in proc.stderr
    proc = d1(app, "execute", "DB", ok=False)
    assert "exactly one of --command SQL or --file FILE" in proc.stderr
