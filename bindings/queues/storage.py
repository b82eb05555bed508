"""The queues' SQLite storage: every message of every queue is one row (``schema.py``).

Why rows and not Python lists: a queue with a million pending messages must cost no
memory, and a message that ``send`` accepted must survive ``kill -9``. The broker keeps
only the batches in flight in memory; everything else is here, found through one index
on ``(queue, state, visible_at, seq)`` so "what is due next" is a short index range scan
however long the backlog.

A row's ``state``: pending (waiting or delayed until ``visible_at``), in flight (handed to
a consumer, outcome not yet recorded), acked (kept only as a bounded record of recent
deliveries) or dead (failed ``max_retries + 1`` times with no dead-letter queue). An acked
row's ``visible_at`` is its ``done_at``, so the same index lists acked rows in the order
they were acked and trimming the oldest is a range delete.
``attempts`` counts deliveries started, so it is incremented when a batch is taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from edgelet.bindings.queues import schema

PENDING, INFLIGHT, ACKED, DEAD = 0, 1, 2, 3
STATE_NAMES = {PENDING: "pending", INFLIGHT: "inflight", ACKED: "acked", DEAD: "dead"}
STATE_CODES = {v: k for k, v in STATE_NAMES.items()}

#: acked rows kept per queue for ``delivered()`` and ``messages(state="acked")``
ACKED_KEEP = 1000

@dataclass(slots=True)
class Row:
    """One message taken for delivery."""

    seq: int
    id: str
    timestamp_ms: int
    content_type: str
    body: bytes
    attempts: int


class QueueStore:
    """All SQL of the queues binding; one instance per host, used from the event loop only."""

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.conn = conn
        self._acked_since_trim: dict[str, int] = {}
        if not read_only:
            schema.install(conn)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction: a crash leaves all of it or none of it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite ends it by itself on some errors (disk full)
                self.conn.execute("ROLLBACK")
            raise

    # -- writes ---------------------------------------------------------------------
    def register(self, queues: Sequence[str]) -> None:
        """Remember queue names so ``queues list`` shows them even while empty."""
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", [(q,) for q in queues])

    def insert(self, queue: str, rows: Sequence[tuple[str, int, str, bytes, float]]) -> None:
        """Store ``(id, timestamp_ms, content_type, body, visible_at)`` rows, committed."""
        with self._tx() as c:
            c.executemany(
                "INSERT INTO queue_messages (queue, id, timestamp_ms, content_type, body, visible_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", [(queue, *r) for r in rows])

    def recover(self, now: float) -> int:
        """After a restart nothing is in flight any more: make those messages due again.
        (Acked rows stored before acked rows sorted by done_at get that order too: per
        queue, through the index, so a large backlog is not scanned at every start; every
        queue with acked rows has a queue_stats row, written by the same settle.)"""
        with self._tx() as c:
            c.executemany("UPDATE queue_messages SET visible_at = done_at WHERE queue = ?"
                          " AND state = ? AND visible_at IS NOT done_at",
                          [(q, ACKED) for q in self.queues()])
            return c.execute("UPDATE queue_messages SET state = ?, visible_at = ? WHERE state = ?",
                             (PENDING, now, INFLIGHT)).rowcount

    def take(self, queue: str, now: float, limit: int) -> list[Row]:
        """Mark up to ``limit`` due messages in flight (attempts + 1) and return them in order."""
        with self._tx() as c:
            found = c.execute(
                "UPDATE queue_messages SET state = ?, attempts = attempts + 1 WHERE seq IN ("
                " SELECT seq FROM queue_messages WHERE queue = ? AND state = ? AND visible_at <= ?"
                " ORDER BY visible_at, seq LIMIT ?)"
                " RETURNING visible_at, seq, id, timestamp_ms, content_type, body, attempts",
                (INFLIGHT, queue, PENDING, now, limit)).fetchall()
        found.sort(key=lambda r: (r[0], r[1]))
        return [Row(*r[1:]) for r in found]

    def settle(self, queue: str, now: float, acked: Sequence[int],
               retried: Sequence[tuple[int, float]], dead: Sequence[int],
               dead_letter_queue: str | None) -> None:
        """Record a batch's outcome in one transaction, before anything else happens."""
        with self._tx() as c:
            for chunk in _chunks(acked):  # one statement per 500 rows, not one per row
                c.execute(f"UPDATE queue_messages SET state = {ACKED}, done_at = ?, visible_at = ?"
                          f" WHERE seq IN ({','.join('?' * len(chunk))})", (now, now, *chunk))
            if retried:
                c.executemany(f"UPDATE queue_messages SET state = {PENDING}, visible_at = ? WHERE seq = ?",
                              [(when, s) for s, when in retried])
            if dead and dead_letter_queue:
                # Moved, not copied: same id and timestamp, attempts start again in the DLQ.
                c.executemany(
                    f"UPDATE queue_messages SET queue = ?, state = {PENDING}, attempts = 0,"
                    f" visible_at = ? WHERE seq = ?", [(dead_letter_queue, now, s) for s in dead])
                c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (dead_letter_queue,))
            elif dead:
                c.executemany(f"UPDATE queue_messages SET state = {DEAD}, done_at = ? WHERE seq = ?",
                              [(now, s) for s in dead])
            c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (queue,))
            c.execute("UPDATE queue_stats SET acked = acked + ?, dead = dead + ? WHERE queue = ?",
                      (len(acked), len(dead), queue))
        if acked:
            count = self._acked_since_trim.get(queue, 0) + len(acked)
            self._acked_since_trim[queue] = count
            if count >= ACKED_KEEP:
                self.trim_acked(queue)

    def trim_acked(self, queue: str, keep: int = ACKED_KEEP) -> None:
        """Forget all but the ``keep`` most recently acked messages of ``queue``.

        Why through the index: acked rows sort there by (done_at, seq), so the boundary is
        one index probe and the delete a range; sorting every acked row by done_at per
        trim was a tenth of the host's time under a send-to-ack load."""
        self._acked_since_trim[queue] = 0
        boundary = self.conn.execute(
            "SELECT visible_at, seq FROM queue_messages WHERE queue = ? AND state = ?"
            " ORDER BY visible_at DESC, seq DESC LIMIT 1 OFFSET ?", (queue, ACKED, keep - 1)).fetchone()
        if boundary is None:
            return
        with self._tx() as c:
            c.execute("DELETE FROM queue_messages WHERE queue = ? AND state = ?"
                      " AND (visible_at, seq) < (?, ?)", (queue, ACKED, *boundary))

    # -- reads ----------------------------------------------------------------------
    def due(self, queue: str, now: float, limit: int) -> tuple[int, float | None]:
        """How many messages are due (at most ``limit``) and when the oldest became due."""
        count, oldest = self.conn.execute(
            "SELECT COUNT(*), MIN(visible_at) FROM (SELECT visible_at FROM queue_messages"
            " WHERE queue = ? AND state = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)",
            (queue, PENDING, now, limit)).fetchone()
        return count, oldest

    def next_visible(self, queue: str, now: float) -> float | None:
        """When the next delayed (or retry-delayed) message becomes due, if any."""
        return self.conn.execute(
            "SELECT MIN(visible_at) FROM queue_messages WHERE queue = ? AND state = ? AND visible_at > ?",
            (queue, PENDING, now)).fetchone()[0]

    def queues(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT queue FROM queue_stats ORDER BY queue")]

    def summary(self, queue: str, now: float) -> dict[str, Any]:
        """Counts for ``queues list``: backlog (pending, incl. delayed), in flight, totals."""
        counts = dict(self.conn.execute(
            "SELECT state, COUNT(*) FROM queue_messages WHERE queue = ? AND state IN (?, ?)"
            " GROUP BY state", (queue, PENDING, INFLIGHT)).fetchall())
        delayed = self.conn.execute(
            "SELECT COUNT(*) FROM queue_messages WHERE queue = ? AND state = ? AND visible_at > ?",
            (queue, PENDING, now)).fetchone()[0]
        oldest = self.conn.execute(
            "SELECT MIN(timestamp_ms) FROM queue_messages WHERE queue = ? AND state IN (?, ?)",
            (queue, PENDING, INFLIGHT)).fetchone()[0]
        stats = self.conn.execute("SELECT acked, dead FROM queue_stats WHERE queue = ?",
                                  (queue,)).fetchone() or (0, 0)
        return {
            "backlog": counts.get(PENDING, 0), "delayed": delayed, "in_flight": counts.get(INFLIGHT, 0),
            "oldest_age_s": None if oldest is None else round(max(0.0, now - oldest / 1000.0), 3),
            "acked": stats[0], "dead": stats[1],
        }

    def messages(self, queue: str, state: int | None, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """``(id, timestamp_ms, content_type, body, attempts, state)`` rows, oldest first."""
        sql = ("SELECT id, timestamp_ms, content_type, body, attempts, state FROM queue_messages"
               " WHERE queue = ?")
        args: list[Any] = [queue]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        if state == ACKED:
            sql += " ORDER BY done_at, seq LIMIT ?"
        else:
            sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return self.conn.execute(sql, args).fetchall()


    # -- browsing (control API, explorer) ---------------------------------------------
    def page(self, queue: str, state: int, now: float, *, retrying: bool | None = None,
             after: tuple[float, int] | None = None, limit: int = 50) -> list[tuple[Any, ...]]:
        """One page of ``queue``'s messages in ``state``, in the order they fall due.

        Why keyset on ``(visible_at, seq)``: that is the order of the existing
        ``queue_messages_due`` index, so page 20,000 of a million-message backlog costs
        one index probe, as page 1 does. ``retrying`` keeps only messages already tried
        (True) or never tried (False). Rows: ``(seq, id, timestamp_ms, content_type, body,
        attempts, visible_at)``."""
        sql = ("SELECT seq, id, timestamp_ms, content_type, body, attempts, visible_at"
               " FROM queue_messages WHERE queue = ? AND state = ?")
        args: list[Any] = [queue, state]
        if retrying is True:
            sql += " AND attempts > 0"
        elif retrying is False:
            sql += " AND attempts = 0"
        if after is not None:
            sql += " AND (visible_at, seq) > (?, ?)"
            args += [after[0], after[1]]
        sql += " ORDER BY visible_at, seq LIMIT ?"
        args.append(limit)
        return self.conn.execute(sql, args).fetchall()

    def count(self, queue: str, state: int, *, retrying: bool | None = None) -> int:
        """How many of ``queue``'s messages are in ``state`` (one index range count)."""
        sql = "SELECT COUNT(*) FROM queue_messages WHERE queue = ? AND state = ?"
        if retrying is True:
            sql += " AND attempts > 0"
        elif retrying is False:
            sql += " AND attempts = 0"
        return int(self.conn.execute(sql, (queue, state)).fetchone()[0])

    def move(self, queue: str, message_id: str, to: str, now: float) -> bool:
        """Put a waiting or dead message of ``queue`` back in ``to``, due now, attempts
        from zero (same id and timestamp, as the move into a dead-letter queue keeps them).
        False when ``queue`` holds no such message outside delivery."""
        with self._tx() as c:
            moved = c.execute(
                f"UPDATE queue_messages SET queue = ?, state = {PENDING}, attempts = 0, visible_at = ?,"
                f" done_at = NULL WHERE queue = ? AND id = ? AND state IN ({PENDING}, {DEAD})",
                (to, now, queue, message_id)).rowcount
            if moved:
                c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (to,))
        return bool(moved)

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` that is not being delivered; how many went.
        (Messages in flight finish their delivery; their outcome then updates no row.)"""
        with self._tx() as c:
            return c.execute(f"DELETE FROM queue_messages WHERE queue = ? AND state != {INFLIGHT}",
                             (queue,)).rowcount


def _chunks(values: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    """Slices of at most ``size``, under SQLite's limit on bound parameters."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
