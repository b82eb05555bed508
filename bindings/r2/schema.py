"""The one SQLite schema of R2's metadata (``<state>/r2.sqlite3``); bodies are files.

Versioned with ``PRAGMA user_version`` so a later change can migrate an old state folder
instead of misreading it. Keys are TEXT under SQLite's BINARY collation: memcmp of UTF-8,
which is the byte order Cloudflare lists keys in.
"""

from __future__ import annotations

import sqlite3

from edgelet.state import Schema
from edgelet.state import migrate as _migrate

_V1 = """
CREATE TABLE IF NOT EXISTS r2_objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    uploaded INTEGER NOT NULL,          -- ms since the epoch
    http_metadata TEXT NOT NULL,        -- JSON object, Cloudflare's camelCase names
    custom_metadata TEXT NOT NULL,      -- JSON object of str -> str
    checksums TEXT NOT NULL,            -- JSON object of algorithm -> hex
    storage_class TEXT NOT NULL,
    blob TEXT NOT NULL,                 -- file under the bucket's folder (blobs/<version>), or ''
    body BLOB,                          -- the body itself when it is small (blob is then '')
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r2_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    http_metadata TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS r2_parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    blob TEXT NOT NULL,                 -- file under the bucket's folder (multipart/<id>/...)
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r2_bindings (
    worker TEXT NOT NULL,
    binding TEXT NOT NULL,
    bucket TEXT NOT NULL,
    PRIMARY KEY (worker, binding)
) WITHOUT ROWID;
"""


#: versions (``PRAGMA user_version``, see :mod:`edgelet.state`): 1. the tables above
SCHEMA = Schema("R2", [_V1])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version; a state folder written by a newer edgelet is
    refused with a StateError naming the file."""
    _migrate(conn, SCHEMA)
