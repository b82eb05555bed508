"""``edgelet.state``: how every state database is opened, versioned and refused.

The unit tests call the opener directly; the last ones start the real ``edgelet dev`` (and
an offline CLI command) on a damaged file or a read-only folder and read what a user reads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edgelet.state import Schema, StateError, migrate, open_database, schema_version

ROOT = Path(__file__).resolve().parents[2]
V0 = ROOT / "tests" / "fixtures" / "state_v0"

V1 = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"
V2 = "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown';"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def v0_file(path: Path) -> Path:
    """A file as edgelet wrote it before versions: the v1 tables, user_version 0."""
    conn = sqlite3.connect(path)
    conn.executescript(V1 + "INSERT INTO notes (body) VALUES ('kept');")
    conn.close()
    return path


# -- versions -------------------------------------------------------------------------------
def test_a_new_file_is_created_at_the_current_version_in_wal_mode(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "deep" / "store.sqlite3", schema=Schema("notes", [V1, V2]))
    assert schema_version(conn) == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("INSERT INTO notes (body, author) VALUES ('x', 'me')")


def test_an_unversioned_file_is_migrated_forward_and_keeps_its_rows(tmp_path: Path) -> None:
    path = v0_file(tmp_path / "store.sqlite3")
    conn = open_database(path, schema=Schema("notes", [V1, V2]))
    assert schema_version(conn) == 2
    assert conn.execute("SELECT body, author FROM notes").fetchall() == [("kept", "unknown")]


def test_a_failing_step_leaves_the_file_at_the_version_before_it(tmp_path: Path) -> None:
    path = v0_file(tmp_path / "store.sqlite3")
    broken = "CREATE TABLE half (x); ALTER TABLE nowhere ADD COLUMN y;"
    with pytest.raises(StateError) as info:
        open_database(path, schema=Schema("notes", [V1, broken]))
    message = str(info.value)
    assert str(path) in message and "from schema version 1 to 2" in message and "still at version 1" in message
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None


def test_a_file_from_a_newer_edgelet_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = v0_file(tmp_path / "store.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = digest(tmp_path)
    with pytest.raises(StateError) as info:
        open_database(path, schema=Schema("notes", [V1, V2]))
    message = str(info.value)
    assert str(path) in message and "newer edgelet" in message and "version 7" in message
    assert "--persist-to" in message
    assert digest(tmp_path) == before


def test_read_only_opening_changes_nothing(tmp_path: Path) -> None:
    path = v0_file(tmp_path / "store.sqlite3")
    before = digest(tmp_path)
    conn = open_database(path, read_only=True, schema=Schema("notes", [V1, V2]))
    assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]
    conn.close()
    assert digest(tmp_path) == before


def test_in_memory_databases_get_the_schema_too() -> None:
    conn = open_database(None, schema=Schema("notes", [V1, V2]))
    assert schema_version(conn) == 2


def test_migrate_on_an_open_connection_reports_the_version_it_found(tmp_path: Path) -> None:
    conn = sqlite3.connect(v0_file(tmp_path / "store.sqlite3"), isolation_level=None)
    assert migrate(conn, Schema("notes", [V1, V2])) == 0
    assert migrate(conn, Schema("notes", [V1, V2])) == 2


# -- damaged files ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["header", "page one"])
def test_a_damaged_file_is_named_with_what_to_do(tmp_path: Path, damage: str) -> None:
    path = v0_file(tmp_path / "store.sqlite3")
    data = bytearray(path.read_bytes())
    if damage == "header":
        data[:16] = b"overwritten!!!!!"
    else:  # a valid magic string, then garbage where SQLite reads the page size and more
        data[16:100] = bytes(range(84))
    path.write_bytes(bytes(data))
    before = digest(tmp_path)
    with pytest.raises(StateError) as info:
        open_database(path, schema=Schema("notes", [V1]))
    message = str(info.value)
    assert f"state file {path} is damaged" in message
    assert "move it aside" in message and "delete it" in message
    assert digest(tmp_path) == before


def test_a_state_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("oops")
    with pytest.raises(StateError, match=r"state folder .*/state is a file, not a folder"):
        open_database(tmp_path / "state" / "kv.sqlite3")


# -- through the real command line ----------------------------------------------------------------
def edgelet(cwd: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "edgelet.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_v0(tmp_path: Path) -> Path:
    shutil.copytree(V0 / "app", tmp_path, dirs_exist_ok=True)
    shutil.copytree(V0 / "state", tmp_path / "state")
    return tmp_path


def assert_one_paragraph(result: subprocess.CompletedProcess[str]) -> str:
    """Start-up failed with a message a person can act on, and nothing else."""
    assert result.returncode != 0, result
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "OperationalError" not in out and "DatabaseError" not in out, out
    assert "Ready on" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return lines[0]


def test_dev_on_a_state_file_with_an_overwritten_header(tmp_path: Path) -> None:  # D12
    app = copy_v0(tmp_path)
    damaged = app / "state" / "workflows.sqlite3"
    with open(damaged, "r+b") as f:
        f.write(b"\0" * 100)
    before = digest(app / "state")
    line = assert_one_paragraph(edgelet(app, "dev", "--port", str(free_port()), "--persist-to", "state"))
    assert f"state file {damaged} is damaged" in line
    assert "move it aside" in line and "delete it to start this store afresh" in line
    assert digest(app / "state") == before  # nothing touched: not even the healthy files migrated


def test_offline_cli_on_a_damaged_state_file(tmp_path: Path) -> None:  # D12, the CLI side
    app = copy_v0(tmp_path)
    damaged = app / "state" / "workflows.sqlite3"
    damaged.write_bytes(b"not a database at all, but long enough to have a header" * 4)
    result = edgelet(app, "workflows", "list", "--persist-to", "state", "--port", str(free_port()))
    line = assert_one_paragraph(result)
    assert line.startswith("Error: ") and f"state file {damaged} is damaged" in line


def read_only(folder: Path) -> tuple[str, ...]:
    """Make ``folder`` read-only for the edgelet run next; the command prefix it needs.

    A normal user: chmod. root ignores file modes, so it gets a private mount namespace in
    which the folder is a read-only bind mount (as a read-only volume would be)."""
    if os.getuid() != 0:
        folder.chmod(0o555)
        return ()
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -Urm is not permitted here: {probe.stderr.decode()[:200]}")
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    return ("unshare", "-Urm", "sh", "-c", script, str(folder))


@pytest.mark.parametrize("existing", [False, True], ids=["empty", "with-state"])
def test_dev_on_a_read_only_state_folder(tmp_path: Path, existing: bool) -> None:  # D11
    app = copy_v0(tmp_path)
    state = app / "state"
    if not existing:
        shutil.rmtree(state)
        state.mkdir()
    before = digest(state)
    prefix = read_only(state)
    try:
        line = assert_one_paragraph(edgelet(app, "dev", "--port", str(free_port()), "--persist-to", "state",
                                            prefix=prefix))
    finally:
        state.chmod(0o755)
    assert f"cannot write to the state folder {state}" in line
    assert "Fix:" in line and "--persist-to" in line and "--in-memory" in line
    assert digest(state) == before
