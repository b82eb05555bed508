"""The queues binding's durable state: ``<state folder>/queues.sqlite3``, two tables.

``queue_batches``
    Messages in groups: one row holds messages that share a queue, a ``state``, a
    ``visible_at`` and an ``attempts`` count (normally one ``sendBatch``), their own fields
    packed in ``messages`` (see ``pack.py``: id, send time, content type, body and
    ``origin``, the send order). ``count`` is how many; ``first`` the smallest origin and
    ``oldest_ms`` the oldest send time in the row. ``state``: 0 pending (waiting, or delayed
    until ``visible_at``), 1 in flight (handed to a consumer, outcome not yet recorded),
    2 acked (kept only as a bounded record of recent deliveries; ``visible_at`` is then when
    it was acked) or 3 dead (failed ``max_retries + 1`` times with no dead-letter queue).
    ``attempts`` counts deliveries started. When the messages of a row part ways (some
    acked, some retried; a take of fewer than the row holds) the row is split. One index on
    ``(queue, state, visible_at, seq)`` answers "what is due next" however long the backlog,
    and lists acked rows in the order they were acked. ``seq`` is AUTOINCREMENT so a value is
    never reused (origins are derived from it).
``queue_stats``
    One row per queue name ever configured (so an empty queue is listed), with how many
    messages were acked or died in total.

Versions (``PRAGMA user_version``, see :mod:`edgelet.state`):
    1. The layout of edgelet before versions were recorded (version 0), stamped: one
       ``queue_messages`` row per message.
    2. ``queue_batches``: messages moved there from ``queue_messages`` (consecutive rows
       alike in queue, state, visible_at and attempts share a row), which is dropped. Why:
       per-message rows made every send, take and settle write 100 rows for a batch of 100,
       most of the host's time under load.
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

V2_TABLE = """
CREATE TABLE queue_batches (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    state        INTEGER NOT NULL DEFAULT 0,
    visible_at   REAL    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    done_at      REAL,
    count        INTEGER NOT NULL,
    first        INTEGER NOT NULL,
    oldest_ms    INTEGER NOT NULL,
    messages     BLOB    NOT NULL
);
CREATE INDEX queue_batches_due ON queue_batches (queue, state, visible_at, seq);
"""

#: origins are ``seq << ORIGIN_BITS | index``: at most this many messages share a send row
ORIGIN_BITS = 10
#: messages per row when rows are written from single messages (migration, large inserts)
ROW_MESSAGES = 100


def _v2(conn: sqlite3.Connection) -> None:
    """Move every message of ``queue_messages`` into ``queue_batches``, keeping its send order
    (origin = old seq << ORIGIN_BITS), then drop the old table. Acked rows written before
    acked rows sorted by done_at get ``visible_at = done_at`` on the way."""
    from edgelet.bindings.queues.pack import pack

    for statement in V2_TABLE.split(";"):
        if statement.strip():
            conn.execute(statement)
    rows = conn.execute(
        "SELECT seq, queue, id, timestamp_ms, content_type, body, attempts, state,"
        " CASE WHEN state = 2 AND done_at IS NOT NULL THEN done_at ELSE visible_at END, done_at"
        " FROM queue_messages ORDER BY seq")
    group: list[tuple] = []

    def flush() -> None:
        if not group:
            return
        _, queue, _, _, _, _, attempts, state, visible_at, done_at = group[0]
        conn.execute(
            "INSERT INTO queue_batches (seq, queue, state, visible_at, attempts, done_at, count, first,"
            " oldest_ms, messages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (group[0][0], queue, state, visible_at, attempts, done_at, len(group), group[0][0] << ORIGIN_BITS,
             min(g[3] for g in group),
             pack((g[0] << ORIGIN_BITS, g[2], g[3], g[4], g[5]) for g in group)))
        group.clear()

    for row in rows:
        if group and (row[1], row[6], row[7], row[8], row[9]) != (
                group[0][1], group[0][6], group[0][7], group[0][8], group[0][9]) \
                or len(group) >= ROW_MESSAGES:
            flush()
        group.append(row)
    flush()
    conn.execute("DROP TABLE queue_messages")


SCHEMA = Schema("queues", [V1, _v2])


def install(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version (creating the tables in a new file)."""
    migrate(conn, SCHEMA)
