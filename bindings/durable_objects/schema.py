"""The Durable Objects' durable state: where each file lives and what it holds.

Two kinds of SQLite file, each with its own schema version (``PRAGMA user_version``, see
:mod:`edgelet.state`):

``<state folder>/durable_objects.sqlite3`` (the host's index, :data:`INDEX_SCHEMA`)
    ``objects``: one row per object ever used, keyed by (namespace, id): its name when it
    was made by name, when it was created and last used (written behind, once a second) and
    its alarm wake-up (``alarm_ms``: at or before the alarm in the object's own file, see below;
    ``alarm_retry`` counts failed runs of that alarm). The partial index finds the next alarm. Listing objects and
    firing alarms need no object's own database.

``<state folder>/do/<namespace>/<id>.sqlite3`` (one per object, :data:`OBJECT_SCHEMA`)
    Opened only by the isolate that runs the object (exclusive lock, WAL; its last writes
    may sit in the ``-wal`` file after a stop). ``_cf_KV`` holds the key-value API's pairs
    (values pickled in the isolate; the host never reads them). Every other table is the
    user's, made through ``storage.sql``; user SQL cannot touch ``_cf_*`` tables nor set
    ``user_version``. With ``--in-memory`` the same files live in a scratch folder
    removed on exit (``scratch.py``).

Versions, both files:
    1. The layout of edgelet before versions were recorded (version 0), stamped.

Object file only:
    2. ``_cf_METADATA``. A file upgraded from version 1 has no alarm row: its alarm (if
       any) is still the host's ``alarm_ms``, which stays the truth for it until the
       object's next alarm change writes the row. A new file gets the row at creation.
"""

from __future__ import annotations

from pathlib import Path

from edgelet.state import Schema

#: the host's index is ``<state folder>/durable_objects.sqlite3``
INDEX_DATABASE = "durable_objects"

#: the objects' own databases are under ``<state folder>/do/``
OBJECTS_FOLDER = "do"

#: the key-value API's table in an object's database
KV_TABLE = "_cf_KV"

#: the platform's own values of an object (row ALARM_KEY: the alarm in ms, NULL for none)
METADATA_TABLE = "_cf_METADATA"
ALARM_KEY = 1

INDEX_V1 = """
CREATE TABLE IF NOT EXISTS objects (
    namespace    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    alarm_ms     INTEGER,
    alarm_retry  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_alarm ON objects (alarm_ms) WHERE alarm_ms IS NOT NULL;
"""

OBJECT_V1 = f"""
CREATE TABLE IF NOT EXISTS {KV_TABLE} (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""

OBJECT_V2 = f"""
CREATE TABLE IF NOT EXISTS {METADATA_TABLE} (key INTEGER PRIMARY KEY, value);
"""

INDEX_SCHEMA = Schema("Durable Object index", [INDEX_V1])
OBJECT_SCHEMA = Schema("Durable Object", [OBJECT_V1, OBJECT_V2])


def objects_root(state_dir: Path | str) -> Path:
    """The folder that holds every object's database."""
    return Path(state_dir) / OBJECTS_FOLDER


def object_path(root: Path, namespace: str, id_hex: str) -> Path:
    """One object's database under :func:`objects_root`."""
    return root / namespace / f"{id_hex}.sqlite3"
