"""All SQL of the Cache API (tables in schema.py)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from edgelet.bindings.cache import schema


@dataclass(frozen=True)
class Entry:
    status: int
    headers: list[list[str]]
    body: bytes
    expires: float


class CacheStorage:
    """Stored responses by (cache name, URL); expiry is checked against the caller's clock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        schema.install(conn)

    def put(self, cache: str, url: str, entry: Entry) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO cache_entries (cache, url, status, headers, expires, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (cache, url, entry.status, json.dumps(entry.headers), entry.expires, entry.body))

    def get(self, cache: str, url: str, now: float) -> Entry | None:
        """The live entry, or None; an expired one is deleted on the way."""
        row = self.conn.execute(
            "SELECT status, headers, body, expires FROM cache_entries WHERE cache = ? AND url = ?",
            (cache, url)).fetchone()
        if row is None:
            return None
        if row[3] <= now:
            self.delete(cache, url, now)
            return None
        return Entry(status=row[0], headers=json.loads(row[1]), body=bytes(row[2]), expires=row[3])

    def delete(self, cache: str, url: str, now: float) -> bool:
        """Remove the entry; True when a live one was there (an expired one counts as absent)."""
        cur = self.conn.execute(
            "DELETE FROM cache_entries WHERE cache = ? AND url = ? RETURNING expires", (cache, url))
        row = cur.fetchone()
        return row is not None and row[0] > now
