"""The first ``put`` of a turn is held until the turn ends and then written alone, without
BEGIN/COMMIT (one statement is atomic by itself; bindings/durable_objects/isolate/storage.py),
which brought a one-put turn back near its cost before writes of a turn were committed
together. Anything else that touches the database in that turn opens the turn's transaction
with the held put first, so reads see it and later writes commit with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage


def reopen(path: Path) -> DurableObjectStorage:
    return DurableObjectStorage(path, alarms=AlarmClient())


async def test_a_held_put_is_read_in_its_turn_and_committed_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    s = reopen(path)
    await s.put("warm", 0)
    await asyncio.sleep(0)                             # a new turn
    s.put("a", 1)
    assert s._pending is not None                      # held, not yet written
    assert await s.get("a") == 1                       # a read writes it first, in the turn's transaction
    assert s._pending is None and s._conn is not None and s._conn.in_transaction
    await asyncio.sleep(0)
    assert not s._implicit and not s._conn.in_transaction
    s.put("b", 2)
    await asyncio.sleep(0)                             # the turn ends: written alone
    assert s._pending is None and not s._implicit
    s.close()
    again = reopen(path)
    assert await again.get(["a", "b"]) == {"a": 1, "b": 2}
    again.close()


async def test_writes_after_a_held_put_commit_with_it_and_roll_back_with_it(tmp_path: Path) -> None:
    """(The AlarmClient here cannot reach a host: the earlier alarm is committed anyway,
    once; it used to ask the host again for ever and never commit.)"""
    path = tmp_path / "o.sqlite3"
    s = reopen(path)
    await s.put("warm", 0)
    await asyncio.sleep(0)                             # a new turn
    s.put("x", 1)
    s.setAlarm(5_000)                                  # joins the put in one transaction
    assert s._conn is not None and s._conn.in_transaction
    await s.sync()
    assert await s.getAlarm() == 5_000 and await s.get("x") == 1
    s.put("y", 1)

    def fail(txn: object) -> None:
        raise RuntimeError("undo")

    try:
        s.transactionSync(lambda: (s.kv.put("z", 1), fail(None)))
    except RuntimeError:
        pass
    await s.sync()
    assert await s.get(["y", "z"]) == {"y": 1}         # the held put stayed, the failed closure's write did not
    s.close()


async def test_an_object_holding_a_put_is_not_closed_by_the_pool_and_close_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    s = reopen(path)
    await s.put("warm", 0)
    await asyncio.sleep(0)                             # a new turn
    s.put("k", "v")
    assert s._release() is False                       # closing now would lose the held put
    s.close()                                          # close writes it
    again = reopen(path)
    assert await again.get("k") == "v"
    again.close()
