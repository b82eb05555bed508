"""``self.ctx.storage``: one Durable Object's key-value API, SQL API and alarms.

Both APIs share the object's one SQLite database, opened in the isolate that runs the
object (SPEC 6 allows it: the SQL API is synchronous, so it cannot be a host call). The
key-value pairs live in the internal table ``_cf_KV``, which user SQL cannot touch. Values
are pickled here, in the isolate; the host never sees them.

Writes made in one turn of the event loop form one implicit transaction (as workerd's
SQLite-backed objects do), committed at the end of the turn and always before the event's
answer leaves (``settle``; WAL, synchronous=NORMAL: a kill -9 of the whole platform loses
nothing acknowledged). So ``put(...); setAlarm(...)`` and ``deleteAll()`` commit their data
and their alarm together or not at all: the alarm is row 1 of ``_cf_METADATA`` in this
same file.

The host only keeps the wake-up schedule and is told of each change in the order that
keeps its wake-up at or before the object's alarm across a kill -9 (workerd's
``ActorSqlite`` does the same): an alarm moved earlier is sent to the host *before* the
transaction that holds it commits; one moved later or deleted, after. A wake-up the
object no longer wants is then harmless: the alarm event finds the row and reschedules
or drops it (``alarm_due``) without running ``alarm()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as _dt
import inspect
import logging
import math
import sqlite3
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgelet.bindings.durable_objects import wire
from edgelet.bindings.durable_objects.isolate import output_gate
from edgelet.bindings.durable_objects.isolate.sql import MAX_SQL_VALUE_BYTES, SqlStorage
from edgelet.bindings.durable_objects.schema import ALARM_KEY, KV_TABLE, METADATA_TABLE, OBJECT_SCHEMA
from edgelet.state import migrate, open_database

#: a put's statement, built once (not an f-string per call)
_PUT_SQL = f"INSERT OR REPLACE INTO {KV_TABLE} (key, value) VALUES (?, ?)"

log = logging.getLogger("edgelet.durable_objects")

MAX_KEYS = 128
MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 128 * 1024

_LIST_OPTIONS = {"prefix": "prefix", "start": "start", "startAfter": "startAfter",
                 "start_after": "startAfter", "end": "end", "reverse": "reverse",
                 "limit": "limit", "allowConcurrency": None, "allow_concurrency": None,
                 "noCache": None, "no_cache": None}
_IGNORED_OPTIONS = {"allowConcurrency", "allow_concurrency", "noCache", "no_cache",
                    "allowUnconfirmed", "allow_unconfirmed"}


#: the open ``storage.transaction()`` the current task runs inside (its closure and the
#: tasks it starts, while it is open)
_CURRENT_TXN: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
    "edgelet_do_txn", default=None)


def _done(value: Any = None) -> Any:
    """An awaitable that is already settled: what a write returns once it is done.

    Why: Cloudflare's storage methods start when called and return a promise, and code
    often does not await them (``this.storage.setAlarm(...)`` in Cloudflare's own alarm
    example). The write happens at the call; awaiting the result is optional."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a script using storage directly)
        return _Ready(value)
    if value is None:  # most writes: one settled future per loop serves them all
        global _done_none
        if _done_none is None or _done_none.get_loop() is not loop:
            _done_none = loop.create_future()
            _done_none.set_result(None)
        return _done_none
    future = loop.create_future()
    future.set_result(value)
    return future


#: a future settled with None, of the loop that made it last (an isolate has one loop):
#: awaiting a settled future any number of times, from any task, gives its result, and it
#: cannot be cancelled or set again
_done_none: asyncio.Future[Any] | None = None


class _Ready:
    """``_done`` without an event loop."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # pragma: no cover - makes this a generator


#: the alarm row of an object file upgraded from schema version 1: the host's index
#: still holds its alarm (see schema.py)
LEGACY: Any = object()


class AlarmClient:
    """How storage reaches the host's alarm scheduler (set in ``objects.py``): ``set`` and
    ``delete`` give the host the wake-up time; ``get`` is asked only for an object whose
    file has no alarm row yet (see ``LEGACY``)."""

    async def get(self) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    async def set(self, when_ms: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def delete(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _options(options: Any, kwargs: dict[str, Any], allowed: dict[str, str | None], where: str) -> dict[str, Any]:
    """Merge an options dict and keyword arguments; unknown names are an error that lists the known."""
    merged: dict[str, Any] = {}
    if options is not None:
        if not isinstance(options, dict):
            raise TypeError(f"{where}: options must be a dict or keyword arguments, got "
                            f"{type(options).__name__}")
        merged.update(options)
    merged.update(kwargs)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in allowed:
            known = ", ".join(k for k, v in allowed.items() if v is not None and "_" not in k)
            raise TypeError(f"{where}: unknown option {key!r}; options: {known or 'none'}")
        target = allowed[key]
        if target is not None and value is not None:
            out[target] = value
    return out


def _ignore_options(options: Any, kwargs: dict[str, Any], where: str) -> None:
    if options is None and not kwargs:  # nearly every call: nothing to check
        return
    _options(options, kwargs, {k: None for k in _IGNORED_OPTIONS}, where)


def check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{where}: keys are str, got {type(key).__name__} ({key!r:.60})")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise ValueError(f"{where}: key {key[:40]!r}... is {size} bytes; keys are at most "
                         f"{MAX_KEY_BYTES} bytes (UTF-8). Use a shorter key (e.g. a hash of it).")
    return key


def encode_value(key: str, value: Any, where: str) -> bytes:
    try:
        data = wire.dumps(value)
    except Exception as exc:
        raise TypeError(f"{where}: the value for key {key[:80]!r} ({type(value).__name__}) cannot "
                        f"be stored: it cannot be pickled ({exc})") from None
    if len(data) > MAX_VALUE_BYTES:
        raise ValueError(f"{where}: the value for key {key[:80]!r} is {len(data)} bytes serialized; "
                         f"values are at most {MAX_VALUE_BYTES} bytes (128 KiB). Split it over "
                         f"several keys or use the SQL API. Nothing was stored.")
    return data


def _key_list(keys: Any, where: str) -> list[str]:
    keys = list(keys)
    if len(keys) > MAX_KEYS:
        raise ValueError(f"{where}: {len(keys)} keys given; at most {MAX_KEYS} per call. "
                         f"Split the call.")
    return [check_key(k, where) for k in keys]


class _Atomic:
    """A savepoint: commits (or rolls back) one storage call as a unit, nesting inside
    ``transaction()``. Outside any transaction, RELEASE is the commit."""

    _seq = 0

    def __init__(self, conn: sqlite3.Connection) -> None:
        _Atomic._seq += 1
        self.conn = conn
        self.name = f"_cf_sp{_Atomic._seq}"

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(f"SAVEPOINT {self.name}")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            try:
                self.conn.execute(f"ROLLBACK TO {self.name}")
                self.conn.execute(f"RELEASE {self.name}")
            except sqlite3.Error as err:  # never swallowed: the writes would stay
                raise RuntimeError(
                    f"Durable Object storage: undoing a failed write ({exc_type.__name__}: {exc}) "
                    f"failed too ({err}); part of it may be kept. This is an edgelet bug: "
                    f"please report it with the code that ran") from err
            return
        self.conn.execute(f"RELEASE {self.name}")


class ConnectionPool:
    """Caps how many object databases an isolate keeps open at once.

    Why: each open WAL database costs three file descriptors and about 150 KB, so a burst
    touching thousands of objects would run out of either long before idle eviction
    catches up. Past the cap, the least recently used connection that is not inside a
    transaction is closed; its object keeps running and reopens it on its next storage call.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.open: OrderedDict[DurableObjectStorage, None] = OrderedDict()

    def opened(self, storage: DurableObjectStorage) -> None:
        self.open[storage] = None
        if len(self.open) <= self.limit:
            return
        for victim in list(self.open):
            if len(self.open) <= self.limit:
                break
            if victim is not storage and victim._release():
                self.open.pop(victim, None)

    def touched(self, storage: DurableObjectStorage) -> None:
        try:
            self.open.move_to_end(storage)
        except KeyError:
            pass

    def closed(self, storage: DurableObjectStorage) -> None:
        self.open.pop(storage, None)


class DurableObjectStorage:
    """The storage of one object: opened lazily, closed when the object is evicted."""

    def __init__(self, path: Path | None, *, alarms: AlarmClient, snapshot: bytes | None = None,
                 delete_all_deletes_alarm: bool = True, pool: ConnectionPool | None = None) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._cursor: Any = None  # set with _conn (see _db)
        #: the turn's first put, not yet written: (key, data) (see _sync_put)
        self._pending: tuple[str, bytes] | None = None
        self._snapshot = snapshot
        self._alarms = alarms
        self._pool = pool
        self._delete_all_deletes_alarm = delete_all_deletes_alarm
        self._user_sql = False
        #: why the authorizer refused the last statement (sql.exec turns it into the message)
        self._denied: str | None = None
        self._closed = False
        #: the open ``transaction()`` (its closure's task and sub-tasks act inside it)
        self._txn: _Transaction | None = None
        self._txn_lock = asyncio.Lock()
        #: the last write queued behind another task's transaction (later ones follow it)
        self._queued: asyncio.Future[Any] | None = None
        #: the last alarm change sent to the host (the next one and getAlarm wait for it)
        self._alarm_op: asyncio.Future[Any] | None = None
        #: the alarm as committed in the file (ms, None, or LEGACY); read when it opens
        self._alarm_committed: Any = LEGACY
        #: the implicit transaction of this turn's writes: open, its commit scheduled
        self._implicit = False
        self._commit_scheduled = False
        #: the turn's transaction wrote the alarm row (only then is it read at the commit)
        self._alarm_dirty = False
        #: the alarm value the host was told before this transaction commits
        self._hinted: Any = LEGACY
        #: the task that tells the host of an earlier alarm before committing
        self._hinting: asyncio.Task[Any] | None = None
        #: futures resolved when the open implicit transaction commits
        self._commit_waiters: list[asyncio.Future[Any]] = []
        #: the alarm time an alarm() handler of this object is running for (getAlarm: None)
        self.serving_alarm: int | None = None
        self.sql = SqlStorage(self)
        self.kv = SyncKvStorage(self)

    # -- connection ----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            if self._pool is not None:
                self._pool.touched(self)
            if self._pending is not None:
                self._hold(conn)
            return conn
        if self._closed:
            raise RuntimeError("this Durable Object's storage was closed (the object was evicted "
                               "or reset); a task that outlived its request cannot use it")
        if self._path is None:
            conn = open_database(None)
            fresh = self._snapshot is None
            if self._snapshot is not None:
                conn.deserialize(zlib.decompress(self._snapshot))
                self._snapshot = None
            migrate(conn, OBJECT_SCHEMA)
        else:
            fresh = not self._path.exists()
            # Only the owner isolate ever opens an object's file, so it may hold the lock:
            # no shared-memory index file, a third less memory and one file less per object.
            conn = open_database(self._path, exclusive=True, schema=OBJECT_SCHEMA)
        if fresh:  # a new object: no alarm, and the file says so (not LEGACY)
            conn.execute(f"INSERT OR IGNORE INTO {METADATA_TABLE} (key, value) VALUES (?, NULL)",
                         (ALARM_KEY,))
        self._alarm_committed = _read_alarm(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.set_authorizer(self._authorize)
        # Cloudflare's "Maximum string, BLOB or table row size" for SQLite-backed objects
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES)
        #: the cursor of the turn's BEGIN and of single puts (one less object per call)
        self._cursor = conn.cursor()
        self._conn = conn
        if self._pool is not None:
            self._pool.opened(self)
        return conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                   trigger: str | None) -> int:
        """Keep user SQL out of the platform's tables (``_cf_*``), as Cloudflare does, off
        ``user_version``, which records the layout of those tables (``schema.py``), inside
        the object's own file (no ATTACH/DETACH, which Cloudflare refuses too) and off
        ``writable_schema`` (editing sqlite_schema by hand can corrupt the database)."""
        if not self._user_sql:
            return sqlite3.SQLITE_OK
        if (arg1 and arg1[:4].lower() == "_cf_") or (arg2 and arg2[:4].lower() == "_cf_"):
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            word = "ATTACH" if action == sqlite3.SQLITE_ATTACH else "DETACH"
            self._denied = (f"{word} is not allowed in a Durable Object's SQL: an object's "
                            f"database is the only one it may use (Cloudflare refuses it too); "
                            f"keep the data in this object's tables, or in another object")
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and arg1 and arg2 is not None:
            pragma = arg1.lower()
            if pragma == "writable_schema":
                self._denied = ("PRAGMA writable_schema is not allowed in a Durable Object's SQL: "
                                "editing sqlite_schema by hand can corrupt the object's database; "
                                "change tables with CREATE/ALTER/DROP")
                return sqlite3.SQLITE_DENY
            if pragma == "user_version":
                self._denied = ("PRAGMA user_version is reserved in a Durable Object's SQL: it "
                                "records the layout of the platform's own tables; keep your "
                                "schema version in a table of your own")
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def close(self) -> bytes | None:
        """Close for good; in memory, return a compressed snapshot to reopen from later.
        Writes of the current turn are committed first (an evicted object has none; an
        isolate that stops keeps them)."""
        if self._implicit and self._conn is not None and self._txn is None:
            self._commit()
        self._release(force=True)
        output_gate.ended(self, False)  # (a no-op unless a transaction() was cut short)
        self._closed = True
        snapshot, self._snapshot = self._snapshot, None
        return snapshot

    def _release(self, force: bool = False) -> bool:
        """Close the connection but allow reopening (memory: keep a snapshot); False when
        a transaction is open on it (closing would roll it back)."""
        conn = self._conn
        if conn is None:
            return True
        if (conn.in_transaction or self._pending is not None) and not force:
            return False
        self._conn = None
        if self._pool is not None:
            self._pool.closed(self)
        try:
            if self._path is None and _has_data(conn):
                self._snapshot = zlib.compress(conn.serialize(), 1)
        finally:
            conn.close()
        return True

    # -- synchronous core (shared by the async API, ``kv`` and transactions) ---------------
    def _empty(self) -> bool:
        """True when nothing was ever written: reads answer without creating a file."""
        return self._conn is None and self._path is not None and not self._closed \
            and not self._path.exists()

    def _get_one(self, key: str) -> Any:
        row = self._db().execute(f"SELECT value FROM {KV_TABLE} WHERE key = ?", (key,)).fetchone()
        return None if row is None else wire.loads(row[0])

    def _get_many(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._db().execute(
            f"SELECT key, value FROM {KV_TABLE} WHERE key IN ({marks}) ORDER BY key", keys).fetchall()
        return {k: wire.loads(v) for k, v in rows}

    def _sync_get(self, keys: Any, where: str) -> Any:
        if isinstance(keys, str):
            check_key(keys, where)
            return None if self._empty() else self._get_one(keys)
        if isinstance(keys, (list, tuple)):
            checked = _key_list(keys, where)
            return {} if self._empty() else self._get_many(checked)
        raise TypeError(f"{where}: pass a key (str) or a list of at most {MAX_KEYS} keys, "
                        f"got {type(keys).__name__}")

    def _sync_put(self, key: Any, value: Any, where: str, has_value: bool) -> None:
        if isinstance(key, dict):
            if has_value:
                raise TypeError(f"{where}: with a dict of entries, pass no separate value")
            if len(key) > MAX_KEYS:
                raise ValueError(f"{where}: {len(key)} entries given; at most {MAX_KEYS} per "
                                 f"call. Split the call.")
            rows = [(check_key(k, where), encode_value(k, v, where)) for k, v in key.items()]
            with _Atomic(self._begin()) as conn:
                conn.executemany(_PUT_SQL, rows)
            return
        if not has_value:
            raise TypeError(f"{where}: pass a key and a value, or a dict of up to {MAX_KEYS} entries")
        data = encode_value(check_key(key, where), value, where)
        if not self._implicit and self._txn is None and self._loop_running():
            # the turn's first write: kept until the turn ends, then written alone without
            # BEGIN/COMMIT (one statement is atomic by itself); anything else touching the
            # database in this turn opens the transaction with it first (_db, _hold)
            self._db()
            if not self._conn_in_txn():
                self._pending = (key, data)
                self._implicit = True
                output_gate.opened(self)  # a held put is a write not yet made: sends wait too
                self._commit_scheduled = True
                asyncio.get_running_loop().call_soon(self._commit_soon)
                return
        self._begin()
        self._cursor.execute(_PUT_SQL, (key, data))

    def _loop_running(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _conn_in_txn(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    def _hold(self, conn: sqlite3.Connection) -> None:
        """The turn's first put is still held (see _sync_put) and the database is wanted
        for something else: open the turn's transaction with that put in it."""
        pending, self._pending = self._pending, None
        assert pending is not None
        self._cursor.execute("BEGIN")
        self._cursor.execute(_PUT_SQL, pending)

    def _sync_delete(self, keys: Any, where: str) -> bool | int:
        conn = self._begin()
        if isinstance(keys, str):
            cur = conn.execute(f"DELETE FROM {KV_TABLE} WHERE key = ?", (check_key(keys, where),))
            return cur.rowcount > 0
        if isinstance(keys, (list, tuple)):
            checked = _key_list(keys, where)
            if not checked:
                return 0
            marks = ",".join("?" * len(checked))
            with _Atomic(conn):
                cur = conn.execute(f"DELETE FROM {KV_TABLE} WHERE key IN ({marks})", checked)
            return cur.rowcount
        raise TypeError(f"{where}: pass a key (str) or a list of at most {MAX_KEYS} keys, "
                        f"got {type(keys).__name__}")

    def _sync_list(self, opts: dict[str, Any], where: str) -> dict[str, Any]:
        clauses: list[str] = []
        params: list[Any] = []
        if "start" in opts and "startAfter" in opts:
            raise ValueError(f"{where}: pass start or startAfter, not both")
        for name, op in (("start", ">="), ("startAfter", ">"), ("end", "<")):
            if name in opts:
                clauses.append(f"key {op} ?")
                params.append(check_key(opts[name], f"{where} {name}"))
        prefix = opts.get("prefix")
        if prefix:
            check_key(prefix, f"{where} prefix")
            clauses.append("key >= ? AND substr(key, 1, ?) = ?")
            params.extend([prefix, len(prefix), prefix])
        sql = f"SELECT key, value FROM {KV_TABLE}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY key DESC" if opts.get("reverse") else " ORDER BY key"
        limit = opts.get("limit")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
                raise ValueError(f"{where}: limit must be a positive int, got {limit!r}")
            sql += " LIMIT ?"
            params.append(limit)
        if self._empty():
            return {}
        rows = self._db().execute(sql, params).fetchall()
        return {k: wire.loads(v) for k, v in rows}

    def _sync_delete_all(self, with_alarm: bool = False) -> None:
        """Drop every table and pair, and (``with_alarm``) the alarm, in one savepoint of
        the turn's transaction: no kill -9 leaves the alarm on an emptied object."""
        conn = self._begin()
        with _Atomic(conn):
            if with_alarm:
                self._write_alarm(None)
            conn.execute("PRAGMA defer_foreign_keys=ON")
            objects = conn.execute(
                "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'"
            ).fetchall()
            for kind, name in objects:
                quoted = '"' + name.replace('"', '""') + '"'
                conn.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} IF EXISTS {quoted}")
            conn.execute(f"DELETE FROM {KV_TABLE}")

    # -- the async API (Cloudflare's) -------------------------------------------------------
    #
    # Writes happen when called (see ``_done``); reads are coroutines. While a
    # ``transaction()`` is open, calls from other tasks wait for it to end (it is a critical
    # section, as in workerd), so nothing outside it joins or undoes it.

    def _foreign_txn(self) -> bool:
        """A transaction is open and the current task is not inside it."""
        return self._txn is not None and _CURRENT_TXN.get() is not self._txn

    def _check_sync(self, where: str) -> None:
        """A synchronous call cannot wait for another task's open transaction: refuse it."""
        if self._foreign_txn():
            raise RuntimeError(
                f"{where}: another task's storage.transaction() is open on this Durable "
                f"Object, and a synchronous call cannot wait for it to end. Await that "
                f"transaction first, make this call inside it, or use the awaited API "
                f"(storage.get/put/delete/list wait for it)")

    def _must_wait(self) -> bool:
        """Another task's transaction is open, or writes queued behind one have not run yet
        (they keep their order). Inside the open transaction nothing waits."""
        if self._txn is not None and _CURRENT_TXN.get() is self._txn:
            return False
        return self._txn is not None or (self._queued is not None and not self._queued.done())

    def _write(self, fn: Callable[[], Any]) -> Any:
        """Run a write now, or (in call order) after another task's open transaction ends."""
        if not self._must_wait():
            return _done(fn())
        self._queued = asyncio.ensure_future(self._after_txn(fn, self._queued))
        return self._queued

    async def _after_txn(self, fn: Callable[[], Any], before: asyncio.Future[Any] | None = None) -> Any:
        if before is not None and not before.done():
            await asyncio.wait([before])
        while self._foreign_txn():
            async with self._txn_lock:
                pass
        return fn()

    async def get(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        """One key -> its value or None; a list of keys -> dict of the keys found."""
        _ignore_options(options, kwargs, "storage.get()")
        if self._must_wait():
            return await self._after_txn(lambda: self._sync_get(keys, "storage.get()"), self._queued)
        return self._sync_get(keys, "storage.get()")

    def put(self, key: Any, value: Any = ..., options: Any = None, **kwargs: Any) -> Any:
        """``put(key, value)`` or ``put({key: value, ...})`` (up to 128 entries, atomically).
        Written when called; the result may be awaited."""
        if isinstance(key, dict) and isinstance(value, dict) and options is None:
            value, options = ..., value  # put(entries, options)
        _ignore_options(options, kwargs, "storage.put()")
        if self._must_wait():  # checked now, written once the transaction ended
            if isinstance(key, dict):
                [encode_value(check_key(k, "storage.put()"), v, "storage.put()") for k, v in key.items()]
            elif value is not ...:
                encode_value(check_key(key, "storage.put()"), value, "storage.put()")
        return self._write(lambda: self._sync_put(key, None if value is ... else value,
                                                  "storage.put()", value is not ...))

    def delete(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        """One key -> whether it existed; a list -> how many existed. Done when called."""
        _ignore_options(options, kwargs, "storage.delete()")
        return self._write(lambda: self._sync_delete(keys, "storage.delete()"))

    async def list(self, options: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Keys in byte order with ``prefix``, ``start``, ``startAfter``, ``end``, ``reverse``, ``limit``."""
        opts = _options(options, kwargs, _LIST_OPTIONS, "storage.list()")
        if self._must_wait():
            return await self._after_txn(lambda: self._sync_list(opts, "storage.list()"), self._queued)
        return self._sync_list(opts, "storage.list()")

    def deleteAll(self, options: Any = None, **kwargs: Any) -> Any:  # noqa: N802
        """Erase every key, every SQL table, and (as Cloudflare does since 2026-02-24) the alarm."""
        _ignore_options(options, kwargs, "storage.deleteAll()")
        with_alarm = self._delete_all_deletes_alarm
        if self._must_wait():
            return self._write(lambda: self._sync_delete_all(with_alarm))
        self._sync_delete_all(with_alarm)
        return self._committed() if with_alarm else _done(None)

    delete_all = deleteAll

    async def transaction(self, closure: Callable[[Any], Any]) -> Any:
        """Run ``closure(txn)`` all or nothing; ``txn.rollback()`` or an exception undoes it.

        One transaction at a time per object: a second one (from another task) waits for
        the first to end; one opened inside another's closure nests in it. Alarm changes
        made inside take effect only if it commits."""
        outer = _CURRENT_TXN.get()
        if outer is not None and outer is self._txn:  # nested: a savepoint inside it
            return await self._run_transaction(closure, outer)
        async with self._txn_lock:
            return await self._run_transaction(closure, None)

    async def _run_transaction(self, closure: Callable[[Any], Any], outer: _Transaction | None) -> Any:
        txn = _Transaction(self, outer)
        previous, self._txn = self._txn, txn
        token = _CURRENT_TXN.set(txn)
        try:
            with txn:
                result = closure(txn)
                if inspect.isawaitable(result):
                    result = await result
        finally:
            _CURRENT_TXN.reset(token)
            self._txn = previous
            if previous is None:
                self._schedule_commit()  # the turn's commit waited for it to end
        if previous is None and self._implicit:
            await self._committed()
        return result

    def transactionSync(self, closure: Callable[[], Any]) -> Any:  # noqa: N802
        """Run a synchronous ``closure()`` all or nothing (raising rolls it back)."""
        self._check_sync("storage.transactionSync()")
        outer = _CURRENT_TXN.get()
        txn = _Transaction(self, outer if outer is self._txn else None)
        previous, self._txn = self._txn, txn
        token = _CURRENT_TXN.set(txn)
        try:
            with txn:
                result = closure()
        finally:
            _CURRENT_TXN.reset(token)
            self._txn = previous
        return result

    transaction_sync = transactionSync

    async def sync(self) -> None:
        """Wait until the writes made so far are committed (they are at the end of the turn
        anyway, and before the event's answer leaves)."""
        await self.settle()

    # -- the implicit transaction of a turn ------------------------------------------------

    def _begin(self) -> sqlite3.Connection:
        """The connection, inside this turn's transaction: the first write of a turn opens
        it and schedules its commit for the end of the turn."""
        conn = self._db()
        if conn.in_transaction:
            return conn
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script using storage directly): autocommit
            return conn
        self._cursor.execute("BEGIN")
        self._implicit = True
        output_gate.opened(self)  # WebSocket messages of this turn wait for its commit
        self._commit_scheduled = True
        loop.call_soon(self._commit_soon)
        return conn

    def _schedule_commit(self) -> None:
        if self._implicit and not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_soon)

    def _commit_soon(self) -> None:
        """End of the turn: commit, unless a ``transaction()`` spans turns (its end commits)
        or the host must first hear of an earlier alarm (then commit once it has)."""
        self._commit_scheduled = False
        if not self._implicit or self._txn is not None or self._conn is None:
            return
        if self._hinting is not None:
            return  # the hint's task commits when the host answered
        if not self._alarm_dirty:
            self._commit()
            return
        after = _read_alarm(self._conn)
        if _moves_earlier(self._alarm_committed, after) and self._hinted != after:
            self._hinting = asyncio.ensure_future(self._hint_then_commit(after))
            return
        self._commit()

    async def _hint_then_commit(self, when_ms: int) -> None:
        try:
            await self._chain_alarm(when_ms)
            self._hinted = when_ms
        except Exception as exc:  # the host is gone: commit anyway, the file is the truth
            log.warning("Durable Object storage: could not give the host the alarm time %d "
                        "before committing (%s); committing anyway", when_ms, exc)
            self._hinted = when_ms  # or _commit_soon would ask again, for ever
        finally:
            self._hinting = None
        self._commit_soon()

    def _commit(self) -> None:
        """COMMIT the turn's transaction, then tell the host of the alarm unless it heard
        of it before (moved later, deleted, or committed early because the object closes)."""
        conn = self._conn
        assert conn is not None
        self._implicit = False
        dirty, self._alarm_dirty = self._alarm_dirty, False
        pending, self._pending = self._pending, None
        try:
            if pending is not None:  # the turn's one put, alone: atomic without BEGIN/COMMIT
                self._cursor.execute(_PUT_SQL, pending)
            else:
                conn.commit()  # COMMIT without a cursor or a statement-cache lookup
        except sqlite3.Error as exc:
            self._commit_failed(conn, exc)
            return
        output_gate.ended(self, True)
        if dirty:
            before, after = self._alarm_committed, _read_alarm(conn)
            self._alarm_committed = after
            if after != before and after is not LEGACY and self._hinted != after:
                self._chain_alarm(after)
            self._hinted = LEGACY
        if self._commit_waiters:
            waiters, self._commit_waiters = self._commit_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _commit_failed(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        log.error("Durable Object storage: committing failed (%s); the writes of that turn "
                  "were rolled back", exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        output_gate.ended(self, False)
        self._hinted = LEGACY
        error = RuntimeError(f"Durable Object storage: committing the writes failed ({exc}); "
                             f"they were rolled back")
        waiters, self._commit_waiters = self._commit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _committed(self) -> Any:
        """An awaitable settled once this turn's writes are committed (at once inside a
        ``transaction()``: its closure cannot wait for its own end)."""
        if not self._implicit or (self._txn is not None and _CURRENT_TXN.get() is self._txn):
            return _done(None)
        future = asyncio.get_running_loop().create_future()
        self._commit_waiters.append(future)
        return future

    async def settle(self) -> None:
        """Wait until every write made so far is committed: the output gate an event's
        answer passes before it leaves (Cloudflare holds outgoing messages the same way)."""
        while self._implicit and self._txn is None:
            if self._hinting is None:
                self._commit_soon()
                if not self._implicit or self._hinting is None:
                    break
            await self._committed()

    # -- alarms ---------------------------------------------------------------------------
    #
    # The alarm is row 1 of _cf_METADATA, written in the turn's transaction (so a
    # transaction() that rolls back undoes it too). Host calls go in order through
    # _alarm_op; getAlarm reads the row.

    def _write_alarm(self, when_ms: int | None) -> None:
        self._alarm_dirty = True
        self._begin().execute(f"INSERT OR REPLACE INTO {METADATA_TABLE} (key, value) VALUES (?, ?)",
                              (ALARM_KEY, when_ms))

    def _alarm_change(self, when_ms: int | None) -> Any:
        """Set (``when_ms``) or delete (None) the alarm in this turn's transaction; the
        returned awaitable settles when it is committed."""
        self._write_alarm(when_ms)
        return self._committed()

    def _chain_alarm(self, when_ms: int | None) -> asyncio.Future[Any]:
        """Send the host the wake-up time after the calls sent before (in order)."""
        self._alarm_op = asyncio.ensure_future(self._send_alarm(self._alarm_op, when_ms))
        return self._alarm_op

    async def _send_alarm(self, previous: asyncio.Future[Any] | None, when_ms: int | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        if when_ms is None:
            await self._alarms.delete()
        else:
            await self._alarms.set(when_ms)

    def _read_alarm_now(self) -> Any:
        """The alarm as this object sees it now (uncommitted writes included), or LEGACY."""
        if self._empty():
            return LEGACY
        return _read_alarm(self._db())

    async def getAlarm(self, options: Any = None, **kwargs: Any) -> int | None:  # noqa: N802
        """The alarm time in ms since the epoch, or None (inside the alarm() handler of
        that very alarm: None, as on Cloudflare)."""
        _ignore_options(options, kwargs, "storage.getAlarm()")
        if self._must_wait():
            await self._after_txn(lambda: None, self._queued)
        when = self._read_alarm_now()
        if when is LEGACY:  # a file from before alarms lived in it: the host knows
            pending = self._alarm_op
            if pending is not None and not pending.done():
                await asyncio.wait([pending])
            return await self._alarms.get()
        if when is not None and when == self.serving_alarm:
            return None
        return when

    def setAlarm(self, scheduled_time: Any, options: Any = None, **kwargs: Any) -> Any:  # noqa: N802
        """Run ``alarm()`` at ``scheduled_time`` (ms since the epoch, or a datetime). Written
        when called, with the turn's other writes; await it to wait for the commit."""
        _ignore_options(options, kwargs, "storage.setAlarm()")
        when = alarm_ms(scheduled_time)
        if self._must_wait():
            return self._write(lambda: self._write_alarm(when))
        return self._alarm_change(when)

    def deleteAlarm(self, options: Any = None, **kwargs: Any) -> Any:  # noqa: N802
        _ignore_options(options, kwargs, "storage.deleteAlarm()")
        if self._must_wait():
            return self._write(lambda: self._write_alarm(None))
        return self._alarm_change(None)

    # -- the alarm event (objects.py) ---------------------------------------------------------
    def alarm_due(self, now_ms: int | None) -> tuple[bool, Any]:
        """At a wake-up from the host: (run alarm() now?, the object's alarm). Not run when
        the object has no alarm (deleted, or a wake-up from before a kill -9 whose write never
        committed) or a later one (moved); a LEGACY file runs as the host says."""
        when = self._read_alarm_now()
        if when is LEGACY or now_ms is None:
            return True, when
        if when is None or when > now_ms:
            return False, when
        return True, when

    def alarm_done(self, served: Any) -> None:
        """alarm() for ``served`` succeeded (or failed for the last time): the alarm is
        gone unless the handler set another."""
        if served is LEGACY or served is None:
            return
        if self._read_alarm_now() == served:
            self._write_alarm(None)

    get_alarm = getAlarm
    set_alarm = setAlarm
    delete_alarm = deleteAlarm

    def __repr__(self) -> str:
        return "<DurableObjectStorage>"


def alarm_ms(value: Any) -> int:
    """Milliseconds since the epoch from an int/float of ms or a datetime."""
    if isinstance(value, _dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"storage.setAlarm(): pass milliseconds since the epoch (int) or a "
                        f"datetime, got {value!r}")
    if value < 0:
        raise ValueError(f"storage.setAlarm(): the time must not be negative, got {value!r}")
    return int(value)


def _read_alarm(conn: sqlite3.Connection) -> Any:
    """Row 1 of ``_cf_METADATA``: ms, None, or LEGACY when the file has no such row."""
    row = conn.execute(f"SELECT value FROM {METADATA_TABLE} WHERE key = ?", (ALARM_KEY,)).fetchone()
    return LEGACY if row is None else row[0]


def _moves_earlier(before: Any, after: Any) -> bool:
    """Must the host hear of ``after`` before it commits? When it is an alarm the host's
    wake-up might be later than (nothing set, a later time, or unknown: LEGACY)."""
    if after is None or after is LEGACY or after == before:
        return False
    return before is None or before is LEGACY or after < before


class _Transaction:
    """The ``txn`` of ``storage.transaction``: get/put/delete/list/rollback and the alarm
    methods inside a savepoint of the turn's transaction (the alarm row rolls back with
    the rest)."""

    def __init__(self, storage: DurableObjectStorage, outer: _Transaction | None = None) -> None:
        self._storage = storage
        self._outer = outer
        self._atomic = _Atomic(storage._begin())
        self._rolled_back = False

    def __enter__(self) -> _Transaction:
        self._atomic.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and self._rolled_back:
            self._atomic.__exit__(RuntimeError, RuntimeError("txn.rollback()"), None)
        else:
            self._atomic.__exit__(exc_type, exc, tb)

    async def get(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        _ignore_options(options, kwargs, "txn.get()")
        return self._storage._sync_get(keys, "txn.get()")

    def put(self, key: Any, value: Any = ..., options: Any = None, **kwargs: Any) -> Any:
        if isinstance(key, dict) and isinstance(value, dict) and options is None:
            value, options = ..., value
        _ignore_options(options, kwargs, "txn.put()")
        self._storage._sync_put(key, None if value is ... else value, "txn.put()", value is not ...)
        return _done(None)

    def delete(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        _ignore_options(options, kwargs, "txn.delete()")
        return _done(self._storage._sync_delete(keys, "txn.delete()"))

    async def list(self, options: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self._storage._sync_list(_options(options, kwargs, _LIST_OPTIONS, "txn.list()"),
                                        "txn.list()")

    def rollback(self) -> None:
        """Undo everything this transaction did, once the closure returns."""
        self._rolled_back = True

    async def getAlarm(self, options: Any = None, **kwargs: Any) -> int | None:  # noqa: N802
        _ignore_options(options, kwargs, "txn.getAlarm()")
        return await self._storage.getAlarm()

    def setAlarm(self, scheduled_time: Any, options: Any = None, **kwargs: Any) -> Any:  # noqa: N802
        _ignore_options(options, kwargs, "txn.setAlarm()")
        self._storage._write_alarm(alarm_ms(scheduled_time))
        return _done(None)

    def deleteAlarm(self, options: Any = None, **kwargs: Any) -> Any:  # noqa: N802
        _ignore_options(options, kwargs, "txn.deleteAlarm()")
        self._storage._write_alarm(None)
        return _done(None)

    get_alarm = getAlarm
    set_alarm = setAlarm
    delete_alarm = deleteAlarm


class SyncKvStorage:
    """``ctx.storage.kv``: the same key-value pairs through synchronous calls (Cloudflare's
    SQLite-backed objects offer both)."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def get(self, key: Any) -> Any:
        self._storage._check_sync("storage.kv.get()")
        return self._storage._sync_get(key, "storage.kv.get()")

    def put(self, key: Any, value: Any = ...) -> None:
        self._storage._check_sync("storage.kv.put()")
        self._storage._sync_put(key, None if value is ... else value, "storage.kv.put()",
                                value is not ...)

    def delete(self, key: Any) -> bool | int:
        self._storage._check_sync("storage.kv.delete()")
        return self._storage._sync_delete(key, "storage.kv.delete()")

    def list(self, options: Any = None, **kwargs: Any) -> Iterable[tuple[str, Any]]:
        self._storage._check_sync("storage.kv.list()")
        opts = _options(options, kwargs, _LIST_OPTIONS, "storage.kv.list()")
        return list(self._storage._sync_list(opts, "storage.kv.list()").items())


def _has_data(conn: sqlite3.Connection) -> bool:
    """Whether an in-memory database holds anything worth keeping after eviction."""
    try:
        if conn.execute(f"SELECT 1 FROM {KV_TABLE} LIMIT 1").fetchone():
            return True
        return conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' LIMIT 1"
        ).fetchone() is not None
    except sqlite3.Error:
        return True
