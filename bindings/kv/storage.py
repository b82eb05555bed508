"""KV storage: every namespace in one SQLite table keyed by (namespace, key) (``schema.py``).

Why one table rather than a database per namespace: the namespace id is just a column, so
two Workers that bind the same ``id`` share rows with no registry to keep in sync, listing
namespaces with their key counts is one query, and the host keeps a single connection.
Keys are stored as their UTF-8 bytes (a BLOB), so SQLite's memcmp order is exactly
Cloudflare's byte order and a prefix is a plain range scan.

A write is acknowledged only once committed (WAL), so a ``kill -9`` of the host loses
nothing a Worker saw acknowledged. Writes that arrive in the same event-loop turn share one
transaction (``GroupCommit``): under load that is one commit for many puts. Expiry follows
``clock.now()`` so virtual time expires keys; expired rows are invisible at once and deleted lazily.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from edgelet.bindings.kv import limits, schema
from edgelet.group_commit import GroupCommit

log = logging.getLogger("edgelet.kv")

#: expired rows are swept at most this often (clock seconds); reads hide them regardless
PURGE_INTERVAL = 60.0

#: (value, expiration, metadata_json) of one live key
Entry = tuple[bytes, "int | None", "str | None"]


T = TypeVar("T")


class ClockLike(Protocol):
    def now(self) -> float: ...


def _upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class KVStorage:
    """Namespaced key-value rows with Cloudflare's validation, expiry and list paging."""

    def __init__(self, conn: sqlite3.Connection, clock: ClockLike) -> None:
        self.conn = conn
        self.clock = clock
        schema.install(conn)
        self._next_purge = 0.0
        self.group = GroupCommit(conn, "KV write")

    # -- reads -----------------------------------------------------------------------------
    def get(self, ns: str, key: str, where: str) -> Entry | None:
        raw = limits.check_key(key, where)
        row = self.conn.execute(
            "SELECT value, expiration, metadata FROM kv_values WHERE namespace = ? AND key = ?",
            (ns, raw)).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] <= self.clock.now():
            self._drop_expired(ns, raw)
            return None
        return row

    def get_many(self, ns: str, keys: list[str], where: str) -> list[Entry | None]:
        """Entries in the order of ``keys`` (None where absent); at most 100 keys."""
        if not isinstance(keys, list):
            raise TypeError(f"{where}: keys must be a list of str")
        limits.check_bulk(keys, where)
        raws = [limits.check_key(k, where) for k in keys]
        marks = ",".join("?" * len(raws))
        found = {r[0]: r[1:] for r in self.conn.execute(
            f"SELECT key, value, expiration, metadata FROM kv_values "
            f"WHERE namespace = ? AND key IN ({marks})", (ns, *raws))}
        now = self.clock.now()
        out: list[Entry | None] = []
        for raw in raws:
            row = found.get(raw)
            if row is not None and row[1] is not None and row[1] <= now:
                self._drop_expired(ns, raw)
                row = found[raw] = None
            out.append(row)
        return out

    def list(self, ns: str, prefix: Any, limit: Any, cursor: Any,
             where: str) -> tuple[list[tuple[str, int | None, str | None]], bool, str | None]:
        """One page: ``([(name, expiration, metadata_json)], list_complete, cursor)``."""
        raw_prefix = limits.check_prefix(prefix, where)
        count = limits.check_limit(limit, where)
        after = limits.decode_cursor(cursor, where)
        now = self.clock.now()
        self._maybe_purge(now)
        sql = ["SELECT key, expiration, metadata FROM kv_values WHERE namespace = ?"]
        params: list[Any] = [ns]
        if raw_prefix:
            sql.append("AND key >= ?")
            params.append(raw_prefix)
            upper = _upper_bound(raw_prefix)
            if upper is not None:
                sql.append("AND key < ?")
                params.append(upper)
        if after is not None:
            sql.append("AND key > ?")
            params.append(after)
        sql.append("AND (expiration IS NULL OR expiration > ?) ORDER BY key LIMIT ?")
        params += [now, count + 1]
        rows = self.conn.execute(" ".join(sql), params).fetchall()
        complete = len(rows) <= count
        rows = rows[:count]
        next_cursor = None if complete else limits.encode_cursor(rows[-1][0])
        return ([(r[0].decode("utf-8"), r[1], r[2]) for r in rows], complete, next_cursor)

    # -- writes ----------------------------------------------------------------------------
    def put(self, ns: str, key: str, value: bytes, where: str, *, expiration: Any = None,
            expiration_ttl: Any = None, metadata: str | None = None) -> int | None:
        """Store one value (all checks first, so a refused put stores nothing); the expiry."""
        raw = limits.check_key(key, where)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{where}: value for key {limits.show_key(key)} must arrive as bytes")
        limits.check_value_size(len(value), key, where)
        now = self.clock.now()
        expires = limits.resolve_expiration(expiration, expiration_ttl, now, key, where)
        limits.check_metadata(metadata, key, where)
        self.conn.execute(
            "INSERT OR REPLACE INTO kv_values (namespace, key, expiration, metadata, value) "
            "VALUES (?, ?, ?, ?, ?)", (ns, raw, expires, metadata, bytes(value)))
        if expires is not None:
            self._maybe_purge(now)
        return expires

    def delete(self, ns: str, key: str, where: str) -> None:
        raw = limits.check_key(key, where)
        self.conn.execute("DELETE FROM kv_values WHERE namespace = ? AND key = ?", (ns, raw))

    # -- expiry ----------------------------------------------------------------------------
    def _drop_expired(self, ns: str, raw: bytes) -> None:
        self.conn.execute(
            "DELETE FROM kv_values WHERE namespace = ? AND key = ? AND expiration <= ?",
            (ns, raw, self.clock.now()))

    def _maybe_purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        cur = self.conn.execute(
            "DELETE FROM kv_values WHERE expiration IS NOT NULL AND expiration <= ?", (now,))
        if cur.rowcount:
            log.debug("purged %d expired KV keys", cur.rowcount)

    # -- namespaces --------------------------------------------------------------------------
    def key_counts(self) -> dict[str, int]:
        """Live keys per namespace id (namespaces with none are absent)."""
        return dict(self.conn.execute(
            "SELECT namespace, count(*) FROM kv_values WHERE expiration IS NULL "
            "OR expiration > ? GROUP BY namespace", (self.clock.now(),)).fetchall())

    def record_bindings(self, bindings: Iterable[tuple[str, str, str]]) -> None:
        """Remember (worker, binding, namespace) so the CLI can resolve names without a dev."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM kv_bindings")
            self.conn.executemany(
                "INSERT OR REPLACE INTO kv_bindings (worker, binding, namespace, position) "
                "VALUES (?, ?, ?, ?)", [(*b, i) for i, b in enumerate(bindings)])

    def recorded_bindings(self) -> builtins.list[tuple[str, str, str]]:
        return self.conn.execute(
            "SELECT worker, binding, namespace FROM kv_bindings ORDER BY position").fetchall()

    # -- the isolate wire --------------------------------------------------------------------
    async def call(self, ns: str, where: str, method: str, args: builtins.list[Any]) -> Any:
        """Answer one wire call from a Worker binding (see ``binding.KVNamespaceAPI``)."""
        if method == "get":
            key, with_metadata = args
            entry = self.get(ns, key, where)
            if entry is None:
                return None
            return [entry[0], entry[2]] if with_metadata else entry[0]
        if method == "get_many":
            keys, with_metadata = args
            entries = self.get_many(ns, keys, where)
            if with_metadata:
                return [None if e is None else [e[0], e[2]] for e in entries]
            return [None if e is None else e[0] for e in entries]
        if method == "put":
            key, value, expiration, expiration_ttl, metadata = args
            await self.group.run(lambda: self.put(
                ns, key, value, where, expiration=expiration, expiration_ttl=expiration_ttl,
                metadata=metadata))
            return None
        if method == "delete":
            await self.group.run(lambda: self.delete(ns, args[0], where))
            return None
        if method == "list":
            prefix, limit, cursor = args
            rows, complete, next_cursor = self.list(ns, prefix, limit, cursor, where)
            return [[list(r) for r in rows], complete, next_cursor]
        raise LookupError(f"{where}: KV has no method {method!r}")
