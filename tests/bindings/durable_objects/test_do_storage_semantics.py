"""What ``ctx.storage`` promises when calls overlap or are not awaited
(bindings/durable_objects/isolate/storage.py, sql.py):

- writes start when called (Cloudflare's promises do): an un-awaited put/delete/setAlarm
  happens, and the next getAlarm sees an un-awaited setAlarm;
- transaction() is a critical section: a second transaction, or a write from another task,
  waits for the open one, so one transaction's failure never undoes another's work or an
  acknowledged put; a synchronous call from another task is refused with a clear error;
- alarm changes inside a transaction happen only if it commits;
- a multi-statement sql.exec keeps what ran before a failing statement (as Cloudflare
  does), and its error says which statement failed and what stayed;
- user SQL cannot ATTACH/DETACH other files or set writable_schema / user_version.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage


class Alarms(AlarmClient):
    """The host's alarm calls, slow like a channel round trip, recorded in order."""

    def __init__(self) -> None:
        self.when: int | None = None
        self.calls: list[tuple[str, int | None]] = []

    async def get(self) -> int | None:
        await asyncio.sleep(0.01)
        return self.when

    async def set(self, when_ms: int) -> None:
        await asyncio.sleep(0.01)
        self.when = when_ms
        self.calls.append(("set", when_ms))

    async def delete(self) -> None:
        await asyncio.sleep(0.01)
        self.when = None
        self.calls.append(("delete", None))


@pytest.fixture
def storage(tmp_path: Path) -> DurableObjectStorage:
    return DurableObjectStorage(tmp_path / "o.sqlite3", alarms=Alarms())


def alarms(storage: DurableObjectStorage) -> Alarms:
    return storage._alarms  # type: ignore[return-value]


async def test_unawaited_writes_happen_when_called(storage: DurableObjectStorage) -> None:
    storage.put("k", "v")                         # not awaited
    storage.put({"a": 1, "b": 2})
    storage.delete("a")
    assert await storage.get(["k", "a", "b"]) == {"k": "v", "b": 2}
    storage.setAlarm(1_900_000_000_000)           # not awaited
    assert await storage.getAlarm() == 1_900_000_000_000   # waits for the set
    storage.deleteAlarm()
    storage.setAlarm(1_900_000_000_001)
    assert await storage.getAlarm() == 1_900_000_000_001   # in call order
    assert await storage.put("x", 1) is None       # awaiting still works
    with pytest.raises(TypeError, match="keys are str"):
        storage.put(7, "v")                        # bad input raises at the call


async def test_overlapping_transactions_run_one_after_the_other(storage: DurableObjectStorage) -> None:
    async def outer(txn: Any) -> None:
        await txn.put("outer", 1)
        await asyncio.sleep(0.05)
        raise RuntimeError("outer fails")

    async def inner(txn: Any) -> None:
        await txn.put("inner", 1)

    first = asyncio.ensure_future(storage.transaction(outer))
    await asyncio.sleep(0.01)
    await storage.transaction(inner)               # waits for outer, then commits
    with pytest.raises(RuntimeError, match="outer fails"):
        await first
    assert await storage.get(["outer", "inner"]) == {"inner": 1}


async def test_a_failed_transaction_keeps_nothing_whatever_the_order(tmp_path: Path) -> None:
    storage = DurableObjectStorage(tmp_path / "o.sqlite3", alarms=Alarms())

    async def early(txn: Any) -> None:
        await txn.put("early", 1)
        await asyncio.sleep(0.01)

    async def late(txn: Any) -> None:
        await txn.put("late-partial", 1)
        await asyncio.sleep(0.05)
        raise RuntimeError("late fails")

    first = asyncio.ensure_future(storage.transaction(early))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(storage.transaction(late))
    await first
    with pytest.raises(RuntimeError, match="late fails"):
        await second
    storage.close()
    reopened = DurableObjectStorage(tmp_path / "o.sqlite3", alarms=Alarms())
    assert await reopened.get(["early", "late-partial"]) == {"early": 1}


async def test_an_acknowledged_put_survives_another_tasks_rollback(storage: DurableObjectStorage) -> None:
    async def slow(txn: Any) -> None:
        await txn.put("t", 1)
        await asyncio.sleep(0.05)
        txn.rollback()

    running = asyncio.ensure_future(storage.transaction(slow))
    await asyncio.sleep(0.01)
    await storage.put("acknowledged", "yes")       # waits for the transaction to end
    await running
    assert await storage.get(["t", "acknowledged"]) == {"acknowledged": "yes"}


async def test_sync_calls_from_another_task_during_a_transaction_are_refused(
        storage: DurableObjectStorage) -> None:
    async def slow(txn: Any) -> None:
        await txn.put("t", 1)
        storage.sql.exec("SELECT 1")               # inside: allowed
        storage.kv.put("inside", 1)
        await asyncio.sleep(0.05)

    running = asyncio.ensure_future(storage.transaction(slow))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match=r"sql.exec\(\): another task's storage.transaction\(\) "
                                           r"is open on this Durable Object"):
        storage.sql.exec("INSERT INTO nowhere VALUES (1)")
    with pytest.raises(RuntimeError, match=r"storage.kv.put\(\): another task's"):
        storage.kv.put("k", 1)
    await running
    storage.kv.put("k", 1)                         # once it ended, fine
    assert await storage.get(["t", "inside", "k"]) == {"t": 1, "inside": 1, "k": 1}


async def test_nested_transactions_still_nest(storage: DurableObjectStorage) -> None:
    async def inner(txn: Any) -> None:
        await txn.put("inner", 1)
        txn.rollback()

    async def outer(txn: Any) -> str:
        await txn.put("outer", 1)
        await storage.transaction(inner)           # same task: a savepoint inside, no wait
        return "ok"

    assert await asyncio.wait_for(storage.transaction(outer), 2) == "ok"
    assert await storage.get(["outer", "inner"]) == {"outer": 1}


async def test_alarm_changes_follow_the_transaction(storage: DurableObjectStorage) -> None:
    async def failing(txn: Any) -> None:
        await txn.put("job", "pending")
        await txn.setAlarm(10**12)
        assert await txn.getAlarm() == 10**12      # seen inside
        raise RuntimeError("validation failed")

    with pytest.raises(RuntimeError):
        await storage.transaction(failing)
    assert await storage.get("job") is None
    assert await storage.getAlarm() is None and alarms(storage).calls == []

    async def rolled(txn: Any) -> None:
        await storage.setAlarm(10**12)             # storage's own method, inside: same rule
        txn.rollback()

    await storage.transaction(rolled)
    assert await storage.getAlarm() is None and alarms(storage).calls == []

    async def committed(txn: Any) -> None:
        await txn.put("job", "pending")
        await txn.setAlarm(10**12)

    await storage.transaction(committed)
    assert await storage.getAlarm() == 10**12
    storage.transactionSync(lambda: storage.deleteAlarm())
    assert await storage.getAlarm() is None


async def test_multi_statement_exec_says_which_statement_failed(storage: DurableObjectStorage) -> None:
    sql = storage.sql
    sql.exec("CREATE TABLE acct(id PRIMARY KEY, bal)")
    sql.exec("INSERT INTO acct VALUES ('a', 100), ('b', 0)")
    with pytest.raises(sqlite3.OperationalError) as err:
        sql.exec("UPDATE acct SET bal = bal - 50 WHERE id = 'a'; "
                 "UPDATE acct SET bal = bal + 50 WHERE idd = 'b'")
    text = str(err.value)
    assert text.startswith("statement 2 of 2 failed: no such column: idd"), text
    assert "the 1 statement before it stayed applied, as on Cloudflare" in text, text
    assert "storage.transactionSync()" in text, text
    # as documented: kept (Cloudflare runs the statements before the failing one)...
    assert sql.exec("SELECT bal FROM acct WHERE id = 'a'").one()["bal"] == 50

    # ... and all or nothing inside transactionSync
    def transfer() -> None:
        sql.exec("UPDATE acct SET bal = bal - 50 WHERE id = 'a'; UPDATE acct SET bal = bal + 50 WHERE idd = 'b'")

    with pytest.raises(sqlite3.OperationalError):
        storage.transactionSync(transfer)
    assert sql.exec("SELECT bal FROM acct WHERE id = 'a'").one()["bal"] == 50


def test_user_sql_stays_inside_the_objects_file(tmp_path: Path) -> None:
    other = tmp_path / "kv.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE kv_values(k, v)")
    conn.commit()
    conn.close()
    storage = DurableObjectStorage(tmp_path / "do" / "o.sqlite3", alarms=Alarms())
    storage.sql.exec("CREATE TABLE t(x)")
    for query, refused in [
        (f"ATTACH DATABASE '{other}' AS k", "ATTACH is not allowed in a Durable Object's SQL"),
        (f"ATTACH DATABASE '{tmp_path}/new.db' AS n", "ATTACH is not allowed"),
        ("DETACH k", "DETACH is not allowed in a Durable Object's SQL"),
        (f"VACUUM INTO '{tmp_path}/copy.db'", "is not allowed"),
        ("PRAGMA writable_schema=ON", "PRAGMA writable_schema is not allowed"),
        ("PRAGMA user_version=7", "PRAGMA user_version is reserved"),
    ]:
        with pytest.raises(sqlite3.DatabaseError) as err:
            storage.sql.exec(query)
        assert refused in str(err.value), (query, str(err.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["do", "kv.sqlite3"]   # no file made
    assert storage.sql.exec("PRAGMA table_info(t)").toArray()[0]["name"] == "x"   # reads are fine
    assert storage.sql.exec("SELECT count(*) AS n FROM t").one()["n"] == 0   # still works


CONFIG = """
    name = "app"
    main = "app.py"
    durable_objects.bindings = [{ name = "OBJ", class_name = "Box" }]
"""

APP = """
    import time
    from workers import DurableObject, Response, WorkerEntrypoint

    class Box(DurableObject):
        async def write(self):
            self.ctx.storage.put("k", "v")                                   # not awaited
            self.ctx.storage.setAlarm(int(time.time() * 1000) + 3_600_000)   # not awaited
            return "ok"

        async def read(self):
            return [await self.ctx.storage.get("k"), await self.ctx.storage.getAlarm()]

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            o = self.env.OBJ.getByName("x")
            if request.url.endswith("/write"):
                return Response(await o.write())
            return Response.json(await o.read())
"""


def test_unawaited_put_and_set_alarm_in_a_worker(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    assert s.get("/write").text == "ok"
    value, alarm = s.get("/read").json()
    assert value == "v"
    assert alarm is not None and alarm > time.time() * 1000, alarm
    assert "never awaited" not in s.logs()


async def test_writes_queued_behind_a_transaction_keep_their_order(storage: DurableObjectStorage) -> None:
    async def slow(txn: Any) -> None:
        await txn.put("k", "txn")
        await asyncio.sleep(0.05)

    running = asyncio.ensure_future(storage.transaction(slow))
    await asyncio.sleep(0.01)
    storage.put("k", "first")                      # not awaited: queued behind the transaction
    storage.put("k", "second")
    assert await storage.get("k") == "second"      # the read waits for both, in order
    await running
