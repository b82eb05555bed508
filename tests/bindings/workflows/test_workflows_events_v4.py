"""A workflows.sqlite3 written at schema version 4 (three ``history_events`` rows per step)
opens, is migrated to version 5 (a step that succeeded at its first attempt is one row that
stands for its three events), and ``subscribe`` shows exactly the events it showed before;
new instances read the same way, cursors included.

tests/fixtures/workflows_v4 was written once by the code of version 4 (make_workflows_v4.py
there); ``events.json`` is what ``subscribe`` returned then.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from test_workflows_support import workflow

from edgelet.bindings.workflows.schema import SCHEMA
from edgelet.testing import Platform

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workflows_v4"


def header_version(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[60:64], "big")


async def events_of(inst: Any, cursor: Any = None) -> list[dict[str, Any]]:
    return [e async for e in inst.subscribe(cursor=cursor)]


async def test_a_version_4_file_shows_the_same_events_and_new_steps_read_alike(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "app", tmp_path, dirs_exist_ok=True)
    (tmp_path / "state").mkdir()
    shutil.copy(FIXTURE / "workflows.sqlite3", tmp_path / "state" / "workflows.sqlite3")
    assert header_version(tmp_path / "state" / "workflows.sqlite3") == 4
    before = json.loads((FIXTURE / "events.json").read_text())

    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        flow = workflow(p, "FLOW")
        old = await flow.get("old-1")
        assert await events_of(old) == before
        assert await events_of(old, cursor=before[3]["eventId"]) == before[4:]
        assert [s.name for s in await old.steps()] == ["a", "flaky", "nap", "c"]

        new = await flow.create(id="new-1")
        await new.wait_for_status("complete", timeout=30)
        events = await events_of(new)
        # the same story as the old instance's, with ids that go on from the file's last one
        assert [(e["type"], e.get("step"), e.get("attempt")) for e in events] == \
            [(e["type"], e.get("step"), e.get("attempt")) for e in before]
        ids = [e["eventId"] for e in events]
        assert ids == list(range(before[-1]["eventId"] + 1, before[-1]["eventId"] + 1 + len(before)))
        assert [e.get("output") for e in events] == [e.get("output") for e in before]
        started = {e["step"]["name"]: e["timestamp"] for e in events if e["type"] == "step.started"}
        assert all(e["timestamp"] == started[e["step"]["name"]] for e in events
                   if e["type"] == "attempt.started" and e["attempt"] == 1)
        # any eventId is a cursor, also one inside a row that stands for three events
        for i, event in enumerate(events):
            assert await events_of(new, cursor=event["eventId"]) == events[i + 1:]

    db = sqlite3.connect(tmp_path / "state" / "workflows.sqlite3")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA.version == 5
        seq_old, seq_new = (db.execute("SELECT seq FROM instances WHERE id = ?", (i,)).fetchone()[0]
                            for i in ("old-1", "new-1"))
        rows = dict(db.execute("SELECT instance, COUNT(*) FROM history_events GROUP BY instance").fetchall())
    finally:
        db.close()
    assert rows[seq_old] == len(before)
    assert rows[seq_new] == len(before) - 4  # steps a and c, first-try successes: one row each
