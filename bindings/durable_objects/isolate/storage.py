"""``self.ctx.storage``: one Durable Object's key-value API, SQL API and alarms.

Both APIs share the object's one SQLite database, opened in the isolate that runs the
object (SPEC 6 allows it: the SQL API is synchronous, so it cannot be a host call). The
key-value pairs live in the internal table ``_cf_KV``, which user SQL cannot touch. Every
write commits before its ``await`` returns (WAL, synchronous=NORMAL: a kill -9 of the whole
platform loses nothing acknowledged). Values are pickled here, in the isolate; the host
never sees them.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import sqlite3
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgelet.bindings.durable_objects import wire
from edgelet.bindings.durable_objects.isolate.sql import MAX_SQL_VALUE_BYTES, SqlStorage
from edgelet.bindings.durable_objects.schema import KV_TABLE, OBJECT_SCHEMA
from edgelet.state import migrate, open_database

MAX_KEYS = 128
MAX_KEY_BYTES = 2048
MAX_VALUE_BYTES = 128 * 1024

_LIST_OPTIONS = {"prefix": "prefix", "start": "start", "startAfter": "startAfter",
                 "start_after": "startAfter", "end": "end", "reverse": "reverse",
                 "limit": "limit", "allowConcurrency": None, "allow_concurrency": None,
                 "noCache": None, "no_cache": None}
_IGNORED_OPTIONS = {"allowConcurrency", "allow_concurrency", "noCache", "no_cache",
                    "allowUnconfirmed", "allow_unconfirmed"}


class AlarmClient:
    """How storage reaches the host's alarm scheduler (set in ``objects.py``)."""

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
            except sqlite3.Error:
                pass
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
        self._snapshot = snapshot
        self._alarms = alarms
        self._pool = pool
        self._delete_all_deletes_alarm = delete_all_deletes_alarm
        self._user_sql = False
        self._closed = False
        self.sql = SqlStorage(self)
        self.kv = SyncKvStorage(self)

    # -- connection ----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            if self._pool is not None:
                self._pool.touched(self)
            return conn
        if self._closed:
            raise RuntimeError("this Durable Object's storage was closed (the object was evicted "
                               "or reset); a task that outlived its request cannot use it")
        if self._path is None:
            conn = open_database(None)
            if self._snapshot is not None:
                conn.deserialize(zlib.decompress(self._snapshot))
                self._snapshot = None
            migrate(conn, OBJECT_SCHEMA)
        else:
            # Only the owner isolate ever opens an object's file, so it may hold the lock:
            # no shared-memory index file, a third less memory and one file less per object.
            conn = open_database(self._path, exclusive=True, schema=OBJECT_SCHEMA)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.set_authorizer(self._authorize)
        # Cloudflare's "Maximum string, BLOB or table row size" for SQLite-backed objects
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES)
        self._conn = conn
        if self._pool is not None:
            self._pool.opened(self)
        return conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                   trigger: str | None) -> int:
        """Keep user SQL out of the platform's tables (``_cf_*``), as Cloudflare does, and
        off ``user_version``, which records the layout of those tables (``schema.py``)."""
        if not self._user_sql:
            return sqlite3.SQLITE_OK
        if (arg1 and arg1[:4].lower() == "_cf_") or (arg2 and arg2[:4].lower() == "_cf_"):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and arg1 and arg1.lower() == "user_version" and arg2 is not None:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def close(self) -> bytes | None:
        """Close for good; in memory, return a compressed snapshot to reopen from later."""
        self._release(force=True)
        self._closed = True
        snapshot, self._snapshot = self._snapshot, None
        return snapshot

    def _release(self, force: bool = False) -> bool:
        """Close the connection but allow reopening (memory: keep a snapshot); False when
        a transaction is open on it (closing would roll it back)."""
        conn = self._conn
        if conn is None:
            return True
        if conn.in_transaction and not force:
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
            with _Atomic(self._db()) as conn:
                conn.executemany(f"INSERT OR REPLACE INTO {KV_TABLE} (key, value) VALUES (?, ?)", rows)
            return
        if not has_value:
            raise TypeError(f"{where}: pass a key and a value, or a dict of up to {MAX_KEYS} entries")
        data = encode_value(check_key(key, where), value, where)
        self._db().execute(f"INSERT OR REPLACE INTO {KV_TABLE} (key, value) VALUES (?, ?)", (key, data))

    def _sync_delete(self, keys: Any, where: str) -> bool | int:
        conn = self._db()
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

    def _sync_delete_all(self) -> None:
        conn = self._db()
        with _Atomic(conn):
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
    async def get(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        """One key -> its value or None; a list of keys -> dict of the keys found."""
        _ignore_options(options, kwargs, "storage.get()")
        return self._sync_get(keys, "storage.get()")

    async def put(self, key: Any, value: Any = ..., options: Any = None, **kwargs: Any) -> None:
        """``put(key, value)`` or ``put({key: value, ...})`` (up to 128 entries, atomically)."""
        if isinstance(key, dict) and isinstance(value, dict) and options is None:
            value, options = ..., value  # put(entries, options)
        _ignore_options(options, kwargs, "storage.put()")
        self._sync_put(key, None if value is ... else value, "storage.put()", value is not ...)

    async def delete(self, keys: Any, options: Any = None, **kwargs: Any) -> bool | int:
        """One key -> whether it existed; a list -> how many existed."""
        _ignore_options(options, kwargs, "storage.delete()")
        return self._sync_delete(keys, "storage.delete()")

    async def list(self, options: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Keys in byte order with ``prefix``, ``start``, ``startAfter``, ``end``, ``reverse``, ``limit``."""
        return self._sync_list(_options(options, kwargs, _LIST_OPTIONS, "storage.list()"),
                               "storage.list()")

    async def deleteAll(self, options: Any = None, **kwargs: Any) -> None:  # noqa: N802
        """Erase every key, every SQL table, and (as Cloudflare does since 2026-02-24) the alarm."""
        _ignore_options(options, kwargs, "storage.deleteAll()")
        self._sync_delete_all()
        if self._delete_all_deletes_alarm:
            await self._alarms.delete()

    delete_all = deleteAll

    async def transaction(self, closure: Callable[[Any], Any]) -> Any:
        """Run ``closure(txn)`` all or nothing; ``txn.rollback()`` or an exception undoes it."""
        with _Transaction(self) as txn:
            result = closure(txn)
            if inspect.isawaitable(result):
                result = await result
            return result

    def transactionSync(self, closure: Callable[[], Any]) -> Any:  # noqa: N802
        """Run a synchronous ``closure()`` all or nothing (raising rolls it back)."""
        with _Transaction(self):
            return closure()

    transaction_sync = transactionSync

    async def sync(self) -> None:
        """Every write is already durable when it returns; kept for compatibility."""

    # -- alarms ---------------------------------------------------------------------------
    async def getAlarm(self, options: Any = None, **kwargs: Any) -> int | None:  # noqa: N802
        """The alarm time in ms since the epoch, or None."""
        _ignore_options(options, kwargs, "storage.getAlarm()")
        return await self._alarms.get()

    async def setAlarm(self, scheduled_time: Any, options: Any = None, **kwargs: Any) -> None:  # noqa: N802
        """Run ``alarm()`` at ``scheduled_time`` (ms since the epoch, or a datetime)."""
        _ignore_options(options, kwargs, "storage.setAlarm()")
        await self._alarms.set(alarm_ms(scheduled_time))

    async def deleteAlarm(self, options: Any = None, **kwargs: Any) -> None:  # noqa: N802
        _ignore_options(options, kwargs, "storage.deleteAlarm()")
        await self._alarms.delete()

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


class _Transaction:
    """The ``txn`` of ``storage.transaction``: get/put/delete/list/rollback inside a savepoint."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage
        self._atomic = _Atomic(storage._db())
        self._rolled_back = False

    def __enter__(self) -> _Transaction:
        self._atomic.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and self._rolled_back:
            self._atomic.__exit__(RuntimeError, None, None)
        else:
            self._atomic.__exit__(exc_type, exc, tb)

    async def get(self, keys: Any, options: Any = None, **kwargs: Any) -> Any:
        _ignore_options(options, kwargs, "txn.get()")
        return self._storage._sync_get(keys, "txn.get()")

    async def put(self, key: Any, value: Any = ..., options: Any = None, **kwargs: Any) -> None:
        if isinstance(key, dict) and isinstance(value, dict) and options is None:
            value, options = ..., value
        _ignore_options(options, kwargs, "txn.put()")
        self._storage._sync_put(key, None if value is ... else value, "txn.put()", value is not ...)

    async def delete(self, keys: Any, options: Any = None, **kwargs: Any) -> bool | int:
        _ignore_options(options, kwargs, "txn.delete()")
        return self._storage._sync_delete(keys, "txn.delete()")

    async def list(self, options: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self._storage._sync_list(_options(options, kwargs, _LIST_OPTIONS, "txn.list()"),
                                        "txn.list()")

    def rollback(self) -> None:
        """Undo everything this transaction did, once the closure returns."""
        self._rolled_back = True

    async def getAlarm(self, options: Any = None, **kwargs: Any) -> int | None:  # noqa: N802
        return await self._storage.getAlarm(options, **kwargs)

    async def setAlarm(self, scheduled_time: Any, options: Any = None, **kwargs: Any) -> None:  # noqa: N802
        await self._storage.setAlarm(scheduled_time, options, **kwargs)

    async def deleteAlarm(self, options: Any = None, **kwargs: Any) -> None:  # noqa: N802
        await self._storage.deleteAlarm(options, **kwargs)

    get_alarm = getAlarm
    set_alarm = setAlarm
    delete_alarm = deleteAlarm


class SyncKvStorage:
    """``ctx.storage.kv``: the same key-value pairs through synchronous calls (Cloudflare's
    SQLite-backed objects offer both)."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def get(self, key: Any) -> Any:
        return self._storage._sync_get(key, "storage.kv.get()")

    def put(self, key: Any, value: Any = ...) -> None:
        self._storage._sync_put(key, None if value is ... else value, "storage.kv.put()",
                                value is not ...)

    def delete(self, key: Any) -> bool | int:
        return self._storage._sync_delete(key, "storage.kv.delete()")

    def list(self, options: Any = None, **kwargs: Any) -> Iterable[tuple[str, Any]]:
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
