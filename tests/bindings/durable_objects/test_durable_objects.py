"""Durable Objects: ids, storage (key-value and SQL), RPC and fetch over real HTTP, the input
gate under concurrency, errors, alarms and their retries, eviction, the control API and
CLI, the host-side test handle with virtual time, and durability across kill -9."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DevServer, free_port, write_app
from crash import kill_and_restart

from edgelet.bindings.durable_objects import ids
from edgelet.bindings.durable_objects.isolate.storage import AlarmClient, DurableObjectStorage
from edgelet.bindings.durable_objects.isolate.stub import DurableObjectNamespace

IDLE = 0.4  # EDGELET_DO_IDLE_TIMEOUT for the servers below
BACKOFF = 0.02  # EDGELET_DO_ALARM_BACKOFF: 6 retries take 1.26 s

APP: dict[str, str] = {
    "wrangler_like.toml": """
        [[workers]]
        name = "front"
        main = "front.py"
        compatibility_date = "2026-11-01"
        durable_objects.bindings = [
            { name = "COUNTER", class_name = "Counter" },
            { name = "FLAKY", class_name = "Flaky" },
            { name = "LOADER", class_name = "Loader" },
            { name = "PLAIN", class_name = "Plain" },
            { name = "FAILING", class_name = "Failing" },
            { name = "STORE", class_name = "Store", script_name = "back" },
        ]

        [[workers]]
        name = "back"
        main = "back.py"
    """,
    "front.py": """
        import asyncio, json, os, threading, time
        from urllib.parse import urlparse
        from workers import DurableObject, Request, Response, WorkerEntrypoint


        HELD = 0


        def open_files():
            return len(os.listdir("/proc/self/fd"))


        class Boom(Exception):
            def __init__(self, message, code=None):
                super().__init__(message)
                self.code = code


        class Counter(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.calls = 0

            async def increment(self, by=1):
                value = await self.ctx.storage.get("count") or 0
                await asyncio.sleep(0.001)  # without the input gate, concurrent calls lose updates
                await self.ctx.storage.put("count", value + by)
                self.calls += 1
                return value + by

            async def info(self):
                return {"calls": self.calls, "count": await self.ctx.storage.get("count"),
                        "id": str(self.ctx.id), "name": self.ctx.id.name, "pid": os.getpid()}

            async def fail(self, kind):
                if kind == "custom":
                    raise Boom("custom failure", code=7)
                raise ValueError("bad value 42")

            async def echo(self, value):
                return value

            async def _secret(self):
                return "private"

            async def put_long_key(self):
                await self.ctx.storage.put("k" * 2049, 1)

            async def put_big_value(self):
                await self.ctx.storage.put("big", b"x" * (128 * 1024 + 1))

            async def hold(self, seconds):
                global HELD
                await self.ctx.storage.put("held", True)
                HELD += 1
                await asyncio.sleep(seconds)

            async def get_key(self, key):
                return await self.ctx.storage.get(key)

            def sql_bad(self):
                self.ctx.storage.sql.exec("SELEC nothing FROM nowhere")

            def sql_ok(self, n):
                sql = self.ctx.storage.sql
                sql.exec("CREATE TABLE IF NOT EXISTS log (n INTEGER)")
                sql.exec("INSERT INTO log VALUES (?)", n)
                return sql.exec("SELECT count(*) AS rows FROM log").one()["rows"]

            async def call_self(self, depth):
                if depth == 0:
                    return "bottom"
                return await self.env.COUNTER.get(self.ctx.id).call_self(depth - 1)

            async def set_alarm_in(self, ms):
                await self.ctx.storage.setAlarm(int(time.time() * 1000) + ms)
                return await self.ctx.storage.getAlarm()

            async def alarm_state(self):
                return {"alarm": await self.ctx.storage.getAlarm(),
                        "fired": await self.ctx.storage.get("fired")}

            async def alarm(self, info):
                fired = await self.ctx.storage.get("fired") or []
                fired.append(info.retryCount)
                await self.ctx.storage.put("fired", fired)

            async def fetch(self, request):
                return Response.json({"method": request.method, "url": request.url,
                                      "body": await request.text(), "name": self.ctx.id.name})


        class Flaky(DurableObject):
            attempts = 0

            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                Flaky.attempts += 1
                if Flaky.attempts == 1:
                    raise RuntimeError("constructor failed on attempt 1")

            async def attempts_seen(self):
                return Flaky.attempts


        class Loader(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.value = None
                ctx.blockConcurrencyWhile(self.load)

            async def load(self):
                await asyncio.sleep(0.05)
                self.value = await self.ctx.storage.get("v") or "loaded"

            async def get_value(self):
                return self.value


        class Plain(DurableObject):
            async def whoami(self):
                return str(self.ctx.id)


        class Failing(DurableObject):
            async def arm(self):
                await self.ctx.storage.setAlarm(int(time.time() * 1000) + 10)

            async def attempts(self):
                return {"seen": await self.ctx.storage.get("seen") or [],
                        "alarm": await self.ctx.storage.getAlarm()}

            async def alarm(self, info):
                seen = await self.ctx.storage.get("seen") or []
                seen.append([info.retryCount, info.isRetry])
                await self.ctx.storage.put("seen", seen)
                raise RuntimeError("alarm always fails")


        def error_json(exc):
            return Response.json({"type": type(exc).__name__, "message": str(exc),
                                  "is_boom": isinstance(exc, Boom),
                                  "code": getattr(exc, "code", None)})


        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                parts = urlparse(request.url).path.strip("/").split("/")
                op, name = parts[0], parts[1] if len(parts) > 1 else "x"
                arg = parts[2] if len(parts) > 2 else None
                ns = self.env.COUNTER
                stub = ns.getByName(name)
                try:
                    if op == "inc":
                        return Response(str(await stub.increment()))
                    if op == "info":
                        return Response.json(await stub.info())
                    if op == "id":
                        return Response(ns.idFromName(name).toString())
                    if op == "fail":
                        await stub.fail(arg)
                    if op == "missing":
                        await stub.no_such_method()
                    if op == "private":
                        await stub._secret()
                    if op == "unpicklable":
                        await stub.echo(threading.Lock())
                    if op == "echo":
                        value = {"l": [1, 2], "s": {3}, "b": b"\\x00"}
                        return Response(repr(await stub.echo(value) == value))
                    if op == "longkey":
                        await stub.put_long_key()
                    if op == "bigvalue":
                        await stub.put_big_value()
                    if op == "getkey":
                        return Response.json(await stub.get_key(arg))
                    if op == "sqlbad":
                        stub.sql_bad  # noqa: B018 - attribute access alone does nothing
                        await stub.sql_bad()
                    if op == "sqlok":
                        return Response(str(await stub.sql_ok(int(arg))))
                    if op == "self":
                        return Response(await asyncio.wait_for(stub.call_self(3), 5))
                    if op == "alarm":
                        return Response.json(await stub.set_alarm_in(int(arg)))
                    if op == "alarmstate":
                        return Response.json(await stub.alarm_state())
                    if op == "dofetch":
                        r = await stub.fetch(Request("https://do/path?q=1", method="POST", body="hi"))
                        r2 = await stub.fetch("/relative")
                        return Response.json([await r.json(), (await r2.json())["url"]])
                    if op == "flaky":
                        return Response(str(await self.env.FLAKY.getByName(name).attempts_seen()))
                    if op == "loader":
                        return Response(str(await self.env.LOADER.getByName(name).get_value()))
                    if op == "plain":
                        return Response(await self.env.PLAIN.getByName(name).whoami())
                    if op == "failing":
                        await self.env.FAILING.getByName(name).arm()
                        return Response("armed")
                    if op == "failing-state":
                        return Response.json(await self.env.FAILING.getByName(name).attempts())
                    if op == "store":
                        s = self.env.STORE.getByName(name)
                        await s.save("k", "v")
                        return Response.json({"pid": await s.pid(), "me": os.getpid()})
                    if op == "store-error":
                        await self.env.STORE.getByName(name).explode()
                    if op == "touch":  # open n objects at once; count files while they live
                        global HELD
                        HELD, n, before = 0, int(arg), open_files()
                        held = asyncio.gather(*(ns.getByName(f"t{i}").hold(1.5) for i in range(n)))
                        while HELD < n:
                            await asyncio.sleep(0.01)
                        during = open_files()
                        await held
                        return Response.json({"before": before, "during": during})
                    if op == "files":
                        return Response(str(open_files()))
                    if op == "badid":
                        ns.idFromString("not-an-id")
                except Exception as exc:
                    return error_json(exc)
                return Response("no such route", status=404)
    """,
    "back.py": """
        import os
        from workers import DurableObject, Response, WorkerEntrypoint

        class StoreError(Exception):
            pass

        class Store(DurableObject):
            async def explode(self):
                raise StoreError("disk on fire")

            async def save(self, key, value):
                await self.ctx.storage.put(key, value)

            async def pid(self):
                return os.getpid()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("back")
    """,
}


# -- ids and storage, in process ----------------------------------------------------------------

def _namespace(ns_id: str = "a" * 32) -> DurableObjectNamespace:
    async def send(*args: Any) -> Any:  # pragma: no cover - not called here
        raise AssertionError

    return DurableObjectNamespace("NS", {"namespace_id": ns_id, "class_name": "C", "script": "w"}, send)


def test_ids_are_stable_random_or_validated() -> None:
    ns = _namespace()
    a = ns.idFromName("alice")
    assert a == ns.id_from_name("alice") and hash(a) == hash(ns.idFromName("alice"))
    assert len(a.toString()) == 64 and int(a.toString(), 16) >= 0
    assert str(a) == a.toString() == a.to_string() and a.name == "alice"
    assert a != ns.idFromName("bob")
    assert _namespace("b" * 32).idFromName("alice") != a  # per namespace
    # the same derivation everywhere (the host uses it for the control API)
    assert a.toString() == ids.id_from_name("a" * 32, "alice")
    u1, u2 = ns.newUniqueId(), ns.new_unique_id()
    assert u1 != u2 and len(str(u1)) == 64 and u1.name is None
    back = ns.idFromString(a.toString().upper())
    assert back == a and back.name is None
    assert {a: 1}[ns.id_from_string(str(a))] == 1
    for bad in ["", "xyz", "a" * 63, "g" * 64, "a" * 65]:
        with pytest.raises(ValueError, match="64 hexadecimal"):
            ns.idFromString(bad)
    with pytest.raises(TypeError, match="idFromName"):
        ns.get(42)


class _Alarms(AlarmClient):
    def __init__(self) -> None:
        self.when: int | None = None

    async def get(self) -> int | None:
        return self.when

    async def set(self, when_ms: int) -> None:
        self.when = when_ms

    async def delete(self) -> None:
        self.when = None


@pytest.fixture(params=["disk", "memory"])
def storage(request: Any, tmp_path: Path) -> Iterator[DurableObjectStorage]:
    path = tmp_path / "o.sqlite3" if request.param == "disk" else None
    s = DurableObjectStorage(path, alarms=_Alarms())
    yield s
    s.close()


async def test_kv_storage_get_put_delete_list(storage: DurableObjectStorage) -> None:
    s = storage
    assert await s.get("missing") is None
    await s.put("a", {"nested": [1, (2, 3)]})
    await s.put({"b": 2, "c": b"\x00bytes", "d": None, "é": "utf8"})
    assert await s.get("a") == {"nested": [1, (2, 3)]}
    assert await s.get(["c", "b", "zz"]) == {"b": 2, "c": b"\x00bytes"}
    assert list(await s.list()) == ["a", "b", "c", "d", "é"]  # byte order
    assert list(await s.list(prefix="é")) == ["é"]
    assert list(await s.list(start="b", end="d")) == ["b", "c"]
    assert list(await s.list({"startAfter": "b", "limit": 2})) == ["c", "d"]
    assert list(await s.list(start_after="b", reverse=True)) == ["é", "d", "c"]
    assert list(await s.list(reverse=True, limit=1)) == ["é"]
    with pytest.raises(TypeError, match="unknown option 'prefx'"):
        await s.list(prefx="a")
    assert await s.delete("a") is True and await s.delete("a") is False
    assert await s.delete(["b", "c", "nope"]) == 2
    assert s.kv.get("d") is None and s.kv.list() == [("d", None), ("é", "utf8")]
    await s.deleteAll()
    assert await s.list() == {}


async def test_kv_storage_limits_store_nothing(storage: DurableObjectStorage) -> None:
    s = storage
    with pytest.raises(ValueError, match="2049 bytes; keys are at most 2048"):
        await s.put("k" * 2049, 1)
    await s.put("k" * 2048, 1)  # exactly the limit is fine
    with pytest.raises(ValueError, match="at most 131072 bytes"):
        await s.put({"ok": 1, "big": b"x" * (128 * 1024 + 1)})
    assert await s.get("ok") is None  # the whole batch was refused
    with pytest.raises(ValueError, match="at most 128"):
        await s.get([f"k{i}" for i in range(129)])
    with pytest.raises(ValueError, match="at most 128"):
        await s.put({f"k{i}": i for i in range(129)})
    with pytest.raises(TypeError, match="keys are str"):
        await s.put(5, 1)
    with pytest.raises(TypeError, match="cannot be pickled"):
        import threading
        await s.put("lock", threading.Lock())
    assert await s.get("lock") is None
    await s.put("fn", lambda x: x + 1)  # cloudpickle carries what pickle cannot
    assert (await s.get("fn"))(1) == 2


async def test_transactions_are_all_or_nothing(storage: DurableObjectStorage) -> None:
    s = storage
    await s.put("balance", 10)

    async def move(txn: Any) -> str:
        await txn.put("balance", await txn.get("balance") - 3)
        await txn.put("log", ["moved 3"])
        return "done"

    assert await s.transaction(move) == "done"
    assert await s.get(["balance", "log"]) == {"balance": 7, "log": ["moved 3"]}

    async def broken(txn: Any) -> None:
        await txn.put("balance", 0)
        s.sql.exec("CREATE TABLE t (x)")
        raise KeyError("stop")

    with pytest.raises(KeyError):
        await s.transaction(broken)

    async def rolled(txn: Any) -> None:
        await txn.delete("balance")
        assert await txn.list() == {"log": ["moved 3"]}
        txn.rollback()

    await s.transaction(rolled)
    assert await s.get("balance") == 7
    assert s.sql.exec("SELECT name FROM sqlite_master WHERE name = 't'").toArray() == []
    with pytest.raises(ZeroDivisionError):
        s.transactionSync(lambda: (s.kv.put("balance", 0), 1 / 0))
    assert await s.get("balance") == 7


async def test_sql_api_cursor_and_errors(storage: DurableObjectStorage) -> None:
    sql = storage.sql
    cur = sql.exec("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT); "
                   "INSERT INTO people (name) VALUES ('ada'), ('bob');")
    assert cur.rowsWritten == 2
    cur = sql.exec("INSERT INTO people (name) VALUES (?), (?)", "cy", "dee")
    assert cur.rows_written == 2 and cur.toArray() == []
    cur = sql.exec("SELECT id, name FROM people WHERE id > ? ORDER BY id", 1)
    assert cur.columnNames == cur.column_names == ["id", "name"]
    assert cur.rowsRead == 3
    assert cur.to_array() == [{"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}, {"id": 4, "name": "dee"}]
    assert cur.toArray() == []  # a cursor is read once
    assert list(sql.exec("SELECT name FROM people ORDER BY id").raw()) == [["ada"], ["bob"], ["cy"], ["dee"]]
    assert [r["name"] for r in sql.exec("SELECT name FROM people")] == ["ada", "bob", "cy", "dee"]
    assert sql.exec("SELECT count(*) AS n FROM people").one() == {"n": 4}
    with pytest.raises(ValueError, match="exactly one result.*4 results"):
        sql.exec("SELECT * FROM people").one()
    with pytest.raises(ValueError, match="no results"):
        sql.exec("SELECT * FROM people WHERE id = 99").one()
    import sqlite3
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        sql.exec("SELEC 1")
    assert sql.exec("SELECT 1 AS one").one() == {"one": 1}  # still works
    for statement in ["BEGIN", "commit", "  SAVEPOINT x", "ROLLBACK", "-- note\nBEGIN TRANSACTION"]:
        with pytest.raises(ValueError, match="transaction"):
            sql.exec(statement)
    await storage.put("secret", 1)
    with pytest.raises(sqlite3.DatabaseError, match="prohibited|not authorized"):
        sql.exec("SELECT * FROM _cf_KV")
    with pytest.raises(sqlite3.DatabaseError, match="not authorized|prohibited"):
        sql.exec("DROP TABLE _cf_KV")
    assert sql.databaseSize > 0 and sql.database_size == sql.databaseSize
    await storage.deleteAll()  # drops user tables too
    assert sql.exec("SELECT name FROM sqlite_master WHERE name = 'people'").toArray() == []


async def test_storage_survives_close_and_reopen(tmp_path: Path) -> None:
    for path in (tmp_path / "x.sqlite3", None):
        s = DurableObjectStorage(path, alarms=_Alarms())
        await s.put("k", [1, 2])
        s.sql.exec("CREATE TABLE t (x); INSERT INTO t VALUES (5)")
        snapshot = s.close()
        assert (snapshot is None) == (path is not None)  # in memory, a compressed snapshot
        again = DurableObjectStorage(path, alarms=_Alarms(), snapshot=snapshot)
        assert await again.get("k") == [1, 2]
        assert again.sql.exec("SELECT x FROM t").one() == {"x": 5}
        again.close()
        with pytest.raises(RuntimeError, match="closed"):
            await again.get("k")


async def test_alarm_api_validates_times(storage: DurableObjectStorage) -> None:
    import datetime as dt
    await storage.setAlarm(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert await storage.getAlarm() == 1893456000000
    await storage.set_alarm(1893456000123.7)
    assert await storage.get_alarm() == 1893456000123
    with pytest.raises(TypeError, match="milliseconds"):
        await storage.setAlarm("tomorrow")
    await storage.deleteAlarm()
    assert await storage.getAlarm() is None
    await storage.setAlarm(1)
    await storage.deleteAll()  # deletes the alarm too (compatibility date >= 2026-02-24)
    assert await storage.getAlarm() is None


# -- the platform over HTTP ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = write_app(tmp_path_factory.mktemp("do"), APP)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGELET_DO_IDLE_TIMEOUT", str(IDLE))
        mp.setenv("EDGELET_DO_ALARM_BACKOFF", str(BACKOFF))
        s = DevServer(folder, [], free_port()).start()
    try:
        yield s
    finally:
        s.stop()


def wait_for(fn: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_concurrent_increments_to_one_object_lose_none(server: DevServer) -> None:
    async def run() -> list[int]:
        # one client per connection: a shared 200-connection httpx pool is slower than the server
        clients = [httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=1),
                                     timeout=60) for _ in range(200)]

        async def five(client: httpx.AsyncClient) -> list[int]:
            out = []
            for _ in range(5):
                r = await client.get("/inc/hot")
                assert r.status_code == 200, r.text
                out.append(int(r.text))
            return out

        try:
            batches = await asyncio.gather(*(five(c) for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        return [v for batch in batches for v in batch]

    values = asyncio.run(run())
    assert sorted(values) == list(range(1, 1001))  # each increment saw the one before it
    info = server.get("/info/hot").json()
    assert info["count"] == 1000 and info["name"] == "hot"


def test_rpc_values_and_errors_reach_the_caller(server: DevServer) -> None:
    assert server.get("/echo/e").text == "True"  # lists, sets, bytes round-trip
    r = server.get("/fail/e/custom").json()
    assert r == {"type": "Boom", "message": "custom failure", "is_boom": True, "code": 7}
    r = server.get("/fail/e/value").json()
    assert r["type"] == "ValueError" and r["message"] == "bad value 42"
    r = server.get("/missing/e").json()
    assert r["type"] == "AttributeError"
    assert "Counter" in r["message"] and "no_such_method" in r["message"]
    r = server.get("/private/e").json()
    assert r["type"] == "AttributeError" and "private" in r["message"]
    r = server.get("/unpicklable/e").json()
    assert r["type"] == "TypeError" and "lock" in r["message"] and "argument 1" in r["message"]
    r = server.get("/badid/e").json()
    assert r["type"] == "ValueError" and "not-an-id" in r["message"]
    # an exception that does not escape the Worker's handler is a 500 naming it
    assert server.get("/inc/e").text == "1"


def test_storage_limits_and_sql_errors_inside_an_object(server: DevServer) -> None:
    r = server.get("/longkey/lim").json()
    assert r["type"] == "ValueError" and "2048 bytes" in r["message"]
    r = server.get("/bigvalue/lim").json()
    assert r["type"] == "ValueError" and "131072 bytes" in r["message"]
    assert server.get("/getkey/lim/big").json() is None  # nothing stored
    r = server.get("/sqlbad/lim").json()
    assert r["type"] == "OperationalError" and "syntax error" in r["message"]
    assert server.get("/sqlok/lim/1").text == "1"
    assert server.get("/sqlok/lim/2").text == "2"  # the object keeps working


def test_constructor_errors_reach_the_caller_and_the_next_call_retries(server: DevServer) -> None:
    r = server.get("/flaky/f").json()
    assert r["type"] == "RuntimeError" and r["message"] == "constructor failed on attempt 1"
    assert server.get("/flaky/f").text == "2"
    assert server.get("/flaky/f").text == "2"  # built once, then kept


def test_block_concurrency_while_in_constructor_and_plain_classes(server: DevServer) -> None:
    assert server.get("/loader/l").text == "loaded"
    plain_id = server.get("/plain/p").text
    assert len(plain_id) == 64


def test_reentrant_calls_do_not_deadlock(server: DevServer) -> None:
    t0 = time.monotonic()
    assert server.get("/self/r").text == "bottom"
    assert time.monotonic() - t0 < 3


def test_fetch_to_an_object(server: DevServer) -> None:
    first, relative_url = server.get("/dofetch/web").json()
    assert first == {"method": "POST", "url": "https://do/path?q=1", "body": "hi", "name": "web"}
    assert relative_url.endswith("/relative")


def test_objects_of_another_workers_script_run_in_that_isolate(server: DevServer) -> None:
    r = server.get("/store/s").json()
    workers = {w["name"]: w["pid"] for w in server.api("GET", "/workers")["result"]}
    assert r["pid"] == workers["back"] and r["me"] == workers["front"]
    # a class only the other script defines is not imported here: its name leads the message
    r = server.get("/store-error/s").json()
    assert r["type"] == "RuntimeError" and r["message"] == "StoreError: disk on fire"


def test_idle_objects_are_evicted_rebuilt_and_release_their_files(server: DevServer) -> None:
    server.get("/inc/ev")
    assert server.get("/info/ev").json()["calls"] == 1
    time.sleep(IDLE * 3)
    info = server.get("/info/ev").json()
    assert info["calls"] == 0 and info["count"] == 1  # a new instance, the same storage

    time.sleep(IDLE * 3)
    r = server.get("/touch/x/150").json()
    assert r["during"] >= r["before"] + 150  # each live object has its own SQLite file open
    files = wait_for(lambda: int(server.get("/files/x").text) <= r["before"] + 5, timeout=10)
    assert files, (r, server.get("/files/x").text)


def test_alarm_fires_once_and_is_cleared(server: DevServer) -> None:
    when = server.get("/alarm/al/150").json()
    assert when > time.time() * 1000
    state = wait_for(lambda: server.get("/alarmstate/al").json()["fired"])
    assert state == [0]
    assert server.get("/alarmstate/al").json() == {"alarm": None, "fired": [0]}


def test_failing_alarm_is_retried_with_backoff_then_given_up(server: DevServer) -> None:
    assert server.get("/failing/fa").text == "armed"
    done = wait_for(lambda: len(server.get("/failing-state/fa").json()["seen"]) >= 7, timeout=15)
    assert done
    time.sleep(BACKOFF * 70)  # no eighth attempt
    state = server.get("/failing-state/fa").json()
    assert state["seen"] == [[0, False]] + [[n, True] for n in range(1, 7)]
    assert state["alarm"] is None
    assert wait_for(lambda: "gave up after 6 retries" in server.logs())
    assert "alarm always fails" in server.logs()


def test_control_api_and_cli(server: DevServer) -> None:
    server.get("/inc/api")
    server.get("/sqlok/api/1")
    namespaces = server.api("GET", "/durable_objects/namespaces")
    assert namespaces["success"]
    counter = next(n for n in namespaces["result"] if n["binding"] == "COUNTER")
    assert counter["class"] == "Counter" and counter["script"] == "front" and counter["objects"] >= 1
    store = next(n for n in namespaces["result"] if n["class"] == "Store")
    assert store["script"] == "back" and store["bindings"] == [{"worker": "front", "binding": "STORE"}]

    objects = server.api("GET", "/durable_objects/namespaces/COUNTER/objects")["result"]
    row = next(o for o in objects if o["name"] == "api")
    assert row["id"] == server.get("/id/api").text and row["last_used"] > 0

    shown = server.api("GET", f"/durable_objects/namespaces/{counter['name']}/objects/{row['id']}")
    assert shown["success"], shown
    result = shown["result"]
    assert {"key": "count", "type": "int", "value": 1} .items() <= result["keys"][0].items()
    assert result["tables"] == [{"name": "log", "rows": 1}]
    by_name = server.api("GET", "/durable_objects/namespaces/COUNTER/objects/api")["result"]
    assert by_name["id"] == row["id"]

    missing = server.api("GET", "/durable_objects/namespaces/NOPE/objects")
    assert not missing["success"] and "COUNTER" in missing["errors"][0]["message"]
    unknown = server.api("GET", "/durable_objects/namespaces/COUNTER/objects/never-used")
    assert not unknown["success"] and "never-used" in unknown["errors"][0]["message"]

    out = subprocess.run([sys.executable, "-m", "edgelet.cli", "durable-objects", "show", "COUNTER",
                          "api", "--port", str(server.port)], capture_output=True, text=True,
                         cwd=server.cwd, timeout=30)
    assert out.returncode == 0, out.stderr
    assert row["id"] in out.stdout and "count" in out.stdout and "log" in out.stdout


# -- durability ---------------------------------------------------------------------------------

def test_sigkill_loses_no_acknowledged_write_and_alarms_survive(dev: Any) -> None:
    s = dev(APP)
    for expected in range(1, 4):
        assert s.get("/inc/durable").text == str(expected)
    object_id = s.get("/id/durable").text
    assert s.get("/alarm/durable/1200").status_code == 200
    again = kill_and_restart(dev, s, down=1.3)  # the alarm falls due while the platform is down
    assert again.get("/id/durable").text == object_id  # idFromName is stable across restarts
    assert again.get("/inc/durable").text == "4"
    fired = wait_for(lambda: again.get("/alarmstate/durable").json()["fired"])
    assert fired == [0]


# -- the host-side handle, in process, virtual time ------------------------------------------------

async def test_host_handle_in_memory_with_virtual_time(tmp_path: Path) -> None:
    from edgelet.testing import Platform

    write_app(tmp_path, APP)
    async with Platform(tmp_path / "wrangler_like.toml", clock="virtual") as p:
        ns = p.durable_object("COUNTER")
        stub = ns.getByName("handle")
        assert await stub.increment(5) == 5
        assert await stub.increment() == 6
        assert await ns.storage(stub.id) == {"count": 6}
        assert await ns.get(ns.idFromName("handle")).echo({"x": 1}) == {"x": 1}
        with pytest.raises(AttributeError, match="no_method"):
            await stub.no_method()
        resp = await stub.fetch("/hello", method="PUT", body="b")
        assert (await resp.json())["method"] == "PUT"

        # in memory, state outlives eviction and even a restart of the owner's isolate
        left = await p.host.invoke("front", "durable_objects.evict", None)
        assert left == 0
        info = await stub.info()
        assert info["calls"] == 0 and info["count"] == 6
        await p.host.isolates["front"].restart()
        assert (await stub.info())["count"] == 6

        # alarms follow the platform clock
        when = await stub.set_alarm_in(3_600_000)
        assert await ns.alarm(stub.id) == when
        await p.advance("30 minutes")
        assert (await stub.alarm_state())["fired"] is None
        await p.advance("31 minutes")
        assert (await stub.alarm_state()) == {"alarm": None, "fired": [0]}
        listed = await ns.objects()
        assert [o["name"] for o in listed] == ["handle"]
