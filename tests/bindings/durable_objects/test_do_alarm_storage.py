"""The alarm lives in the object's own file (``_cf_METADATA``), and the host's wake-up is kept
at or before it: an earlier alarm reaches the host before the commit that holds it, a later
one or a deletion after (bindings/durable_objects/isolate/storage.py). A file from before
(schema version 1, no alarm row) keeps asking the host until its next alarm change."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage
from edgelet.bindings.durable_objects.schema import OBJECT_V1


class Host(AlarmClient):
    """The host's wake-up, recording what the object's file had committed at each call."""

    def __init__(self, when: int | None = None) -> None:
        self.when = when
        self.storage: DurableObjectStorage | None = None
        self.calls: list[tuple[str, int | None, Any]] = []

    async def get(self) -> int | None:
        return self.when

    async def set(self, when_ms: int) -> None:
        assert self.storage is not None
        self.calls.append(("set", when_ms, self.storage._alarm_committed))
        await asyncio.sleep(0.01)
        self.when = when_ms

    async def delete(self) -> None:
        assert self.storage is not None
        self.calls.append(("delete", None, self.storage._alarm_committed))
        await asyncio.sleep(0.01)
        self.when = None


def storage_with(path: Path | None, host: Host) -> DurableObjectStorage:
    storage = DurableObjectStorage(path, alarms=host)
    host.storage = storage
    return storage


async def test_host_hears_of_an_earlier_alarm_before_the_commit_and_a_later_one_after(
        tmp_path: Path) -> None:
    host = Host()
    storage = storage_with(tmp_path / "o.sqlite3", host)
    await storage.setAlarm(2_000)                   # earlier than none: host first
    assert host.calls == [("set", 2_000, None)]
    await storage.setAlarm(1_000)                   # earlier: host first
    assert host.calls[-1] == ("set", 1_000, 2_000)
    await storage.setAlarm(5_000)                   # later: committed first
    await asyncio.sleep(0.05)
    assert host.calls[-1] == ("set", 5_000, 5_000)
    storage.put("k", 1)
    await storage.deleteAll()                       # deletion: committed first
    await asyncio.sleep(0.05)
    assert host.calls[-1] == ("delete", None, None)
    assert host.when is None and await storage.getAlarm() is None


async def test_a_wake_up_the_object_does_not_back_does_not_run(tmp_path: Path) -> None:
    host = Host()
    storage = storage_with(tmp_path / "o.sqlite3", host)
    await storage.setAlarm(5_000)
    assert storage.alarm_due(6_000) == (True, 5_000)
    assert storage.alarm_due(4_000) == (False, 5_000)  # moved later: reschedule, not run
    await storage.deleteAlarm()
    assert storage.alarm_due(6_000) == (False, None)   # deleted: drop the wake-up
    await storage.setAlarm(5_000)
    storage.serving_alarm = 5_000
    assert await storage.getAlarm() is None            # inside alarm(): not its own alarm
    storage.alarm_done(5_000)
    storage.serving_alarm = None
    await storage.settle()
    assert await storage.getAlarm() is None
    storage.close()


async def test_a_file_from_before_keeps_the_hosts_alarm_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(OBJECT_V1 + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO _cf_KV VALUES ('k', x'00')")
    conn.commit()
    conn.close()
    host = Host(when=1_234)
    storage = storage_with(path, host)
    assert await storage.getAlarm() == 1_234          # no alarm row: the host's index
    assert storage.alarm_due(2_000)[0] is True        # and its wake-ups run as before
    await storage.setAlarm(9_999)
    host.when = 1                                     # the host's value is no longer asked
    assert await storage.getAlarm() == 9_999
    storage.close()
    reopened = storage_with(path, Host(when=1))
    assert await reopened.getAlarm() == 9_999
    reopened.close()


async def test_writes_of_one_turn_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    host = Host()
    storage = storage_with(path, host)
    await storage.put("seed", 1)
    await storage.settle()
    storage.put("v", 1)
    storage.setAlarm(9_000)
    # before the turn ends nothing of it is in the file (a kill -9 now keeps neither)
    assert storage._conn is not None and storage._conn.in_transaction
    await storage.settle()
    assert not storage._conn.in_transaction
    storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM _cf_METADATA WHERE key = 1").fetchone() == (9_000,)
    assert conn.execute("SELECT count(*) FROM _cf_KV").fetchone() == (2,)
