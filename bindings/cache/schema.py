"""The Cache API's state: ``<state folder>/cache.sqlite3``, one table.

``cache_entries``
    One stored response per (cache name, URL). ``cache`` is ``""`` for ``caches.default``
    and the name given to ``caches.open(name)`` otherwise. ``expires`` is epoch seconds on
    the platform clock (virtual time in tests); an entry past it is never served and is
    deleted when next looked up. ``headers`` is JSON ``[[name, value], ...]``.

Versions (``PRAGMA user_version``, see :mod:`edgelet.state`):
    1. The first layout.
"""

from __future__ import annotations

import sqlite3

from edgelet.state import Schema, migrate

#: the file is ``<state folder>/cache.sqlite3``
DATABASE = "cache"

V1 = """
CREATE TABLE IF NOT EXISTS cache_entries (
    cache   TEXT    NOT NULL,
    url     TEXT    NOT NULL,
    status  INTEGER NOT NULL,
    headers TEXT    NOT NULL,   -- JSON [[name, value], ...]
    expires REAL    NOT NULL,   -- epoch seconds on the platform clock
    body    BLOB    NOT NULL,
    PRIMARY KEY (cache, url)
) WITHOUT ROWID;
"""

SCHEMA = Schema("Cache", [V1])


def install(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version (creating the table in a new file)."""
    migrate(conn, SCHEMA)
