"""A state folder written by edgelet before schema versions existed still opens, is
migrated, and serves its data.

tests/fixtures/state_v0/state was written once by the code of that time (see
make_state_v0.py there) and is kept as it was: KV keys with metadata, a queue message still
pending, a Durable Object's key-value pair and SQL table (its last writes still in the
object's ``-wal`` file), and a workflow instance that recorded a step and waits for an event.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgelet.bindings.durable_objects.schema import INDEX_SCHEMA, OBJECT_SCHEMA
from edgelet.bindings.kv.schema import SCHEMA as KV_SCHEMA
from edgelet.bindings.queues.schema import SCHEMA as QUEUES_SCHEMA
from edgelet.bindings.workflows.schema import SCHEMA as WORKFLOWS_SCHEMA

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state_v0"
ARGS = ("--persist-to", "state", "--no-reload")


def header_version(path: Path) -> int:
    """``user_version`` from the file header, read without opening (and so changing) it."""
    return int.from_bytes(path.read_bytes()[60:64], "big")


def files(state: Path) -> dict[str, Path]:
    return {"kv": state / "kv.sqlite3", "queues": state / "queues.sqlite3",
            "index": state / "durable_objects.sqlite3", "workflows": state / "workflows.sqlite3",
            "object": next((state / "do").glob("*/*.sqlite3"))}


def digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def wait_for(fn: Any, what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def test_todays_state_folder_opens_migrates_and_serves_its_data(dev: Any, tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "app", tmp_path, dirs_exist_ok=True)
    state = tmp_path / "state"
    shutil.copytree(FIXTURE / "state", state)
    assert {name: header_version(p) for name, p in files(state).items()} == dict.fromkeys(files(state), 0)

    # the offline CLI reads it as it is, read-only
    before = digest(state)
    listed = subprocess.run([sys.executable, "-m", "edgelet.cli", "workflows", "instances", "list", "approval",
                             "--persist-to", "state", "--port", "1"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and "wf-1" in listed.stdout and "waiting" in listed.stdout, listed
    after = digest(state)  # SQLite may add an empty -wal and a -shm beside a WAL file it reads
    assert {k: after[k] for k in before} == before

    s = dev(None, *ARGS, cwd=tmp_path)
    assert s.get("/kv/alpha").json() == {"value": "one", "metadata": None}
    assert s.get("/kv/beta").json() == {"value": "two", "metadata": {"by": "v0"}}
    # the pending message (its delay long over) reaches the consumer, which writes it to KV
    delivered = wait_for(lambda: s.get("/kv/delivered").json()["value"], "the v0 queue message never came")
    assert delivered == "from v0"
    assert s.get("/counter").json() == {"count": 41, "bumps": 2}
    assert s.get("/counter/bump").json() == 42

    instance = "/workflows/approval/instances/wf-1"
    assert s.api("GET", instance)["result"]["status"] == "waiting"
    assert s.api("POST", f"{instance}/events/approve", json={"ok": True})["success"]
    info = wait_for(lambda: (r := s.api("GET", instance)["result"])["status"] == "complete" and r,
                    "the v0 workflow did not finish")
    assert info["output"] == {"first": {"seeded": 7}, "approved": {"ok": True}}
    first = next(st for st in info["steps"] if st["name"] == "first")
    assert len(first["attempts"]) == 1  # recorded by the old edgelet, not run again
    s.stop()

    expected = {"kv": KV_SCHEMA, "queues": QUEUES_SCHEMA, "index": INDEX_SCHEMA,
                "workflows": WORKFLOWS_SCHEMA, "object": OBJECT_SCHEMA}
    for name, path in files(state).items():
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == expected[name].version, name
        finally:
            conn.close()
