"""The KV binding's durable state: ``<state folder>/kv.sqlite3``, two tables.

``kv_values``
    Every key of every namespace, keyed by (namespace, key). The namespace id is just a
    column, so two Workers that bind the same ``id`` share rows. Keys are their UTF-8 bytes
    (a BLOB) so SQLite's memcmp order is Cloudflare's byte order and a prefix is a range
    scan. ``expiration`` is epoch seconds (NULL: never); the partial index finds what to
    sweep. ``value`` is last so listing never reads a value's overflow pages.
``kv_bindings``
    Which Worker binds which namespace under which name, as the last ``edgelet dev`` saw it:
    the offline CLI resolves a binding name with it when no config is at hand.

Versions (``PRAGMA user_version``, see :mod:`edgelet.state`):
    1. The layout of edgelet before versions were recorded (version 0), stamped.
"""

from __future__ import annotations

import sqlite3

from edgelet.state import Schema, migrate

#: the file is ``<state folder>/kv.sqlite3``
DATABASE = "kv"

V1 = """
CREATE TABLE IF NOT EXISTS kv_values (
    namespace  TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    expiration INTEGER,            -- epoch seconds; NULL never expires
    metadata   TEXT,               -- JSON text; NULL when none was given
    value      BLOB    NOT NULL,   -- last, so listing never reads a value's overflow pages
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_values_expiring ON kv_values (expiration)
    WHERE expiration IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_bindings (
    worker    TEXT NOT NULL,
    binding   TEXT NOT NULL,
    namespace TEXT NOT NULL,
    position  INTEGER NOT NULL DEFAULT 0,   -- config order: the first Worker's binding wins
    PRIMARY KEY (worker, binding)
);
"""

SCHEMA = Schema("KV", [V1])


def install(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version (creating the tables in a new file)."""
    migrate(conn, SCHEMA)
