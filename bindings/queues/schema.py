"""The queues binding's durable state: ``<state folder>/queues.sqlite3``, two tables.

``queue_messages``
    Every message of every queue, one row each; ``seq`` is the send order. ``state``:
    0 pending (waiting, or delayed until ``visible_at``), 1 in flight (handed to a consumer,
    outcome not yet recorded), 2 acked (kept only as a bounded record of recent deliveries;
    ``visible_at`` is then when it was acked) or 3 dead (failed ``max_retries + 1`` times
    with no dead-letter queue). ``attempts`` counts deliveries started. One index on
    ``(queue, state, visible_at, seq)`` answers "what is due next" however long the backlog,
    and lists acked rows in the order they were acked.
``queue_stats``
    One row per queue name ever configured (so an empty queue is listed), with how many
    messages were acked or died in total.

Versions (``PRAGMA user_version``, see :mod:`edgelet.state`):
    1. The layout of edgelet before versions were recorded (version 0), stamped.
"""

from __future__ import annotations

import sqlite3

from edgelet.state import Schema, migrate

#: the file is ``<state folder>/queues.sqlite3``
DATABASE = "queues"

V1 = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq          INTEGER PRIMARY KEY,
    queue        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    state        INTEGER NOT NULL DEFAULT 0,
    visible_at   REAL    NOT NULL,
    done_at      REAL
);
CREATE INDEX IF NOT EXISTS queue_messages_due ON queue_messages (queue, state, visible_at, seq);
CREATE TABLE IF NOT EXISTS queue_stats (
    queue TEXT PRIMARY KEY,
    acked INTEGER NOT NULL DEFAULT 0,
    dead  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""

SCHEMA = Schema("queues", [V1])


def install(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version (creating the tables in a new file)."""
    migrate(conn, SCHEMA)
