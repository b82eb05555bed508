"""The host's small index of Durable Objects: which exist, their names, last use, alarm.

Why the host keeps one: listing objects and firing alarms must work without opening every
object's database (those belong to the isolates). The first time an object is seen its row
is written at once, so a listing survives a kill -9; "last used" times are written behind,
in one batch per second, because they change on every call and are only informative.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
from collections.abc import Callable
from typing import Any

from edgelet.bindings.durable_objects.schema import INDEX_SCHEMA
from edgelet.state import migrate

FLUSH_DELAY = 1.0


class ObjectIndex:
    """Rows of ``objects`` in the host's index database (``schema.py``)."""

    def __init__(self, conn: sqlite3.Connection, now_ms: Callable[[], int]) -> None:
        self.conn = conn
        self.now_ms = now_ms
        migrate(conn, INDEX_SCHEMA)
        self._seen: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], tuple[str | None, int]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None

    # -- touches ---------------------------------------------------------------------
    def touch(self, ns: str, id_hex: str, name: str | None) -> None:
        """Record a use; a new object's row is committed before its first event runs."""
        key = (ns, id_hex)
        now = self.now_ms()
        if key in self._seen:
            self._dirty[key] = (name, now)
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            return
        self.conn.execute(
            "INSERT INTO objects (namespace, id, name, created_ms, last_used_ms) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, id) DO UPDATE SET last_used_ms = excluded.last_used_ms, "
            "name = coalesce(objects.name, excluded.name)", (ns, id_hex, name, now, now))
        self._seen.add(key)

    def flush(self) -> None:
        """Write the batched "last used" times (also called on stop)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._dirty:
            return
        rows = [(now, name, ns, id_hex) for (ns, id_hex), (name, now) in self._dirty.items()]
        self._dirty.clear()
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "UPDATE objects SET last_used_ms = ?, name = coalesce(name, ?) "
                "WHERE namespace = ? AND id = ?", rows)

    # -- reads -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT namespace, count(*) FROM objects GROUP BY namespace"))

    def list(self, ns: str, *, limit: int = 1000, cursor: str | None = None) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, name, created_ms, last_used_ms, alarm_ms FROM objects "
            "WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?", (ns, cursor or "", limit))
        return [row_dict(r) for r in rows]

    def get(self, ns: str, id_hex: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, name, created_ms, last_used_ms, alarm_ms FROM objects "
            "WHERE namespace = ? AND id = ?", (ns, id_hex)).fetchone()
        return row_dict(row) if row else None

    # -- alarms ------------------------------------------------------------------------
    def alarm(self, ns: str, id_hex: str) -> tuple[int | None, int]:
        row = self.conn.execute("SELECT alarm_ms, alarm_retry FROM objects WHERE namespace = ? AND id = ?",
                                (ns, id_hex)).fetchone()
        return (row[0], row[1]) if row else (None, 0)

    def set_alarm(self, ns: str, id_hex: str, when_ms: int | None, retry: int = 0) -> None:
        now = self.now_ms()
        self.conn.execute(
            "INSERT INTO objects (namespace, id, name, created_ms, last_used_ms, alarm_ms, alarm_retry) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET "
            "alarm_ms = excluded.alarm_ms, alarm_retry = excluded.alarm_retry",
            (ns, id_hex, now, now, when_ms, retry))
        self._seen.add((ns, id_hex))

    def due(self, now_ms: int) -> builtins.list[tuple[str, str, str | None, int, int]]:
        return self.conn.execute(
            "SELECT namespace, id, name, alarm_ms, alarm_retry FROM objects "
            "WHERE alarm_ms IS NOT NULL AND alarm_ms <= ? ORDER BY alarm_ms", (now_ms,)).fetchall()

    def next_alarms(self, limit: int) -> builtins.list[tuple[str, str, int]]:
        return self.conn.execute(
            "SELECT namespace, id, alarm_ms FROM objects WHERE alarm_ms IS NOT NULL "
            "ORDER BY alarm_ms LIMIT ?", (limit,)).fetchall()


def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    id_hex, name, created, last_used, alarm = row
    return {"id": id_hex, "name": name, "created": created, "last_used": last_used, "alarm": alarm}
