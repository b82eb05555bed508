"""`edgelet d1` given files it cannot use: a message naming the file and the fix, exit 1, and
nothing run or applied (before: a Python traceback, and with migrations, the files before the
bad one already applied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_app
from d1_app import CONFIG, d1


@pytest.fixture
def app(tmp_path: Path) -> Path:
    write_app(tmp_path, {"wrangler.toml": CONFIG, "w.py": "# not run\n"})
    return tmp_path


def tables(app: Path) -> list[str]:
    out = d1(app, "execute", "DB", "--json", "--command",
             "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").stdout
    return [row["name"] for row in json.loads(out)[0]["results"]]


def test_execute_a_file_that_is_not_utf8(app: Path) -> None:
    (app / "latin1.sql").write_bytes("CREATE TABLE t (a TEXT);\nINSERT INTO t VALUES ('caf\xe9');\n".encode("latin-1"))
    proc = d1(app, "execute", "DB", "--file", "latin1.sql", ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "latin1.sql: not UTF-8 text (byte 0xe9 at offset 51); nothing was run" in proc.stderr
    assert "save the file as UTF-8" in proc.stderr
    assert "t" not in tables(app)


def test_migrations_apply_reads_every_file_before_applying_any(app: Path) -> None:
    folder = app / "db" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);\n")
    (folder / "0002_names.sql").write_bytes(b"ALTER TABLE users ADD COLUMN name TEXT DEFAULT '\xff';\n")
    proc = d1(app, "migrations", "apply", "DB", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "0002_names.sql: not UTF-8 text (byte 0xff" in proc.stderr
    assert "no migration was applied" in proc.stderr
    assert "users" not in tables(app)  # 0001 was not applied ahead of the bad file
    listed = d1(app, "migrations", "list", "DB").stdout
    assert "0001_users.sql" in listed and "0002_names.sql" in listed
    # once the file is fixed, both apply
    (folder / "0002_names.sql").write_text("ALTER TABLE users ADD COLUMN name TEXT;\n")
    d1(app, "migrations", "apply", "DB")
    assert "users" in tables(app)


def test_export_to_a_folder_that_does_not_exist(app: Path) -> None:
    d1(app, "execute", "DB", "--command", "CREATE TABLE t (a); INSERT INTO t VALUES (1)")
    proc = d1(app, "export", "DB", "--output", "missing/dump.sql", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--output missing/dump.sql: the folder missing does not exist" in proc.stderr
    assert "mkdir -p missing" in proc.stderr
    assert not (app / "missing").exists()
    d1(app, "export", "DB", "--output", "dump.sql")
    assert "INSERT INTO" in (app / "dump.sql").read_text()


@pytest.mark.parametrize("name", ["users/admins", "", "  "])
def test_migrations_create_with_a_name_that_is_no_file_name(app: Path, name: str) -> None:
    proc = d1(app, "migrations", "create", "DB", name, ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot be a migration's file name" in proc.stderr
    folder = app / "db" / "migrations"
    assert not folder.exists() or list(folder.iterdir()) == []
    d1(app, "migrations", "create", "DB", "users admins")
    assert [p.name for p in folder.iterdir()] == ["0001_users_admins.sql"]
