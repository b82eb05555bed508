"""An object's own database carries its schema version, which user SQL cannot change, and
an object file from before versions opens with its data."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage
from edgelet.bindings.durable_objects.schema import OBJECT_SCHEMA

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "state_v0" / "state" / "do"


def copy_v0_object(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "do")
    return next((tmp_path / "do").glob("*/*.sqlite3"))


async def test_a_v0_object_file_opens_with_its_pairs_and_tables(tmp_path: Path) -> None:
    path = copy_v0_object(tmp_path)
    storage = DurableObjectStorage(path, alarms=AlarmClient())
    assert await storage.get("count") == 41
    assert storage.sql.exec("SELECT sum(n) AS s FROM bumps").one()["s"] == 41
    storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == OBJECT_SCHEMA.version


async def test_user_sql_cannot_set_the_schema_version(tmp_path: Path) -> None:
    storage = DurableObjectStorage(tmp_path / "obj.sqlite3", alarms=AlarmClient())
    await storage.put("k", 1)
    with pytest.raises(sqlite3.DatabaseError, match="PRAGMA user_version is reserved"):
        storage.sql.exec("PRAGMA user_version = 99")
    assert storage.sql.exec("PRAGMA user_version").one()["user_version"] == OBJECT_SCHEMA.version
    storage.close()


def test_a_damaged_object_file_fails_that_object_only_naming_the_file(dev: Any, tmp_path: Path) -> None:
    app = FIXTURE.parents[1] / "app"
    shutil.copytree(app, tmp_path, dirs_exist_ok=True)
    shutil.copytree(FIXTURE.parent, tmp_path / "state")
    path = next((tmp_path / "state" / "do").glob("*/*.sqlite3"))
    path.with_name(path.name + "-wal").unlink()
    with open(path, "r+b") as f:
        f.write(b"overwritten with something else")
    s = dev(None, "--persist-to", "state", "--no-reload", cwd=tmp_path)
    r = s.get("/counter")
    assert r.status_code == 500
    assert f"state file {path} is damaged" in r.text and "move it aside" in r.text
    assert s.get("/kv/alpha").json()["value"] == "one"  # the other stores serve on
    assert path.read_bytes().startswith(b"overwritten with something else")
