"""Progress bars of the long D1 commands: drawn on a terminal, absent when piped or under NO_COLOR."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EDGELET, write_app
from d1_app import CONFIG, d1
from ptyrun import BAR, run_in_terminal

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""
MIGRATIONS = {
    "db/migrations/0001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);",
    "db/migrations/0002_prices.sql": "ALTER TABLE items ADD COLUMN price INTEGER;",
    "db/migrations/0003_seed.sql": "INSERT INTO items (name, price) VALUES ('pear', 3);",
}
#: 1,500 rows in one statement: more than the export's bar threshold (1,000)
FILL = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) "
        "INSERT INTO items (name, price) SELECT 'item ' || i, i FROM n")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_app(tmp_path, {"wrangler.toml": CONFIG, "w.py": WORKER, **MIGRATIONS})


def test_migrations_apply_shows_a_bar_on_a_terminal(app: Path) -> None:
    code, out = run_in_terminal([*EDGELET, "d1", "migrations", "apply", "DB", "--port", "9"], app)
    assert code == 0, out
    assert BAR in out and "3/3" in out and "Applied migrations" in out, out
    assert "applied 0003_seed.sql" in out and "3 migrations applied." in out


def test_migrations_apply_piped_prints_no_bar(app: Path) -> None:
    result = d1(app, "migrations", "apply", "DB")
    both = result.stdout + result.stderr
    assert "3 migrations applied." in result.stdout
    assert BAR not in both and "\x1b[" not in both, both


def test_no_color_turns_the_bar_off_on_a_terminal(app: Path) -> None:
    code, out = run_in_terminal([*EDGELET, "d1", "migrations", "apply", "DB", "--port", "9"], app,
                                env={"NO_COLOR": "1"})
    assert code == 0 and "3 migrations applied." in out, out
    assert BAR not in out, out


def test_export_of_many_rows_shows_a_bar_on_a_terminal_and_none_d1(app: Path) -> None:
    d1(app, "migrations", "apply", "DB")
    d1(app, "execute", "DB", "--command", FILL)
    code, out = run_in_terminal([*EDGELET, "d1", "export", "DB", "--output", "tty.sql", "--port", "9"], app)
    assert code == 0, out
    rows = 1501 + 3  # the items, and the d1_migrations table's record of the three migrations
    assert BAR in out and f"{rows}/{rows}" in out and "Exporting shop-db" in out, out
    result = d1(app, "export", "DB", "--output", "piped.sql")
    assert BAR not in result.stdout + result.stderr and "\x1b[" not in result.stderr
    assert (app / "tty.sql").read_text() == (app / "piped.sql").read_text()
    assert (app / "piped.sql").read_text().count("INSERT INTO") == rows


def test_a_small_export_draws_no_bar(app: Path) -> None:
    d1(app, "migrations", "apply", "DB")
    code, out = run_in_terminal([*EDGELET, "d1", "export", "DB", "--output", "small.sql", "--port", "9"], app)
    assert code == 0 and "Exported" in out, out
    assert BAR not in out
