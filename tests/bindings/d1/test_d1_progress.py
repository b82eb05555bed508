"""Progress bars of the long D1 commands: drawn on a terminal, absent when piped or under NO_COLOR."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ptyrun import BAR, run_in_terminal

EDGELET = [sys.executable, "-m", "edgelet.cli"]

CONFIG = """
    name = "shop"
    main = "w.py"
    [[d1_databases]]
    binding = "DB"
    database_name = "shop-db"
    database_id = "0b6a8c52-2222-4d1e-8f00-00000000abcd"
    migrations_dir = "db/migrations"
"""
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
    for rel, text in {"wrangler.toml": CONFIG, "w.py": WORKER, **MIGRATIONS}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path


def piped(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*EDGELET, "d1", *args, "--port", "9"], cwd=cwd, capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_migrations_apply_shows_a_bar_on_a_terminal(app: Path) -> None:
    code, out = run_in_terminal([*EDGELET, "d1", "migrations", "apply", "DB", "--port", "9"], app)
    assert code == 0, out
    assert BAR in out and "3/3" in out and "Applied migrations" in out, out
    assert "applied 0003_seed.sql" in out and "3 migrations applied." in out


def test_migrations_apply_piped_prints_no_bar(app: Path) -> None:
    result = piped(app, "migrations", "apply", "DB")
    both = result.stdout + result.stderr
    assert "3 migrations applied." in result.stdout
    assert BAR not in both and "\x1b[" not in both, both


def test_no_color_turns_the_bar_off_on_a_terminal(app: Path) -> None:
    code, out = run_in_terminal([*EDGELET, "d1", "migrations", "apply", "DB", "--port", "9"], app,
                                env={"NO_COLOR": "1"})
    assert code == 0 and "3 migrations applied." in out, out
    assert BAR not in out, out


def test_export_of_many_rows_shows_a_bar_on_a_terminal_and_none_piped(app: Path) -> None:
    piped(app, "migrations", "apply", "DB")
    piped(app, "execute", "DB", "--command", FILL)
    code, out = run_in_terminal([*EDGELET, "d1", "export", "DB", "--output", "tty.sql", "--port", "9"], app)
    assert code == 0, out
    rows = 1501 + 3  # the items, and the d1_migrations table's record of the three migrations
    assert BAR in out and f"{rows}/{rows}" in out and "Exporting shop-db" in out, out
    result = piped(app, "export", "DB", "--output", "piped.sql")
    assert BAR not in result.stdout + result.stderr and "\x1b[" not in result.stderr
    assert (app / "tty.sql").read_text() == (app / "piped.sql").read_text()
    assert (app / "piped.sql").read_text().count("INSERT INTO") == rows


def test_a_small_export_draws_no_bar(app: Path) -> None:
    piped(app, "migrations", "apply", "DB")
    code, out = run_in_terminal([*EDGELET, "d1", "export", "DB", "--output", "small.sql", "--port", "9"], app)
    assert code == 0 and "Exported" in out, out
    assert BAR not in out
