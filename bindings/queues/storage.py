"""The queues' SQLite storage: messages in rows of a batch each (``schema.py``, ``pack.py``).

Why rows and not Python lists: a queue with a million pending messages must cost no
memory, and a message that ``send`` accepted must survive ``kill -9``. The broker keeps
only the batches in flight in memory; everything else is here, found through one index
on ``(queue, state, visible_at, seq)`` so "what is due next" is a short index range scan
however long the backlog.

Why a row per batch and not per message: a ``sendBatch`` of 100 is one INSERT, the take
that hands it to the consumer one UPDATE and the settle that records its acks one UPDATE,
where per-message rows cost 100 row writes (and their index entries) each time. A row
holds messages alike in queue, state, ``visible_at`` and ``attempts``; when they part ways
(some acked and some retried, a take of fewer than the row holds) the row is split, so
each message still has its own state, retries and dead-lettering.

A message's state: pending (waiting or delayed until ``visible_at``), in flight (handed to
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
from edgelet.bindings.queues.pack import Packed, pack, unpack
from edgelet.state import schema_version

PENDING, INFLIGHT, ACKED, DEAD = 0, 1, 2, 3
STATE_NAMES = {PENDING: "pending", INFLIGHT: "inflight", ACKED: "acked", DEAD: "dead"}
STATE_CODES = {v: k for k, v in STATE_NAMES.items()}

#: acked messages kept per queue for ``delivered()`` and ``messages(state="acked")``
ACKED_KEEP = 1000

_INSERT = ("INSERT INTO queue_batches (seq, queue, state, visible_at, attempts, done_at, count, first,"
           " oldest_ms, messages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


@dataclass(slots=True)
class Row:
    """One message taken for delivery; ``seq`` is the stored row (batch) it is in now."""

    seq: int
    origin: int
    id: str
    timestamp_ms: int
    content_type: str
    body: bytes
    attempts: int


@dataclass(slots=True)
class Taken:
    """The messages of one delivery as stored: ``(seq, attempts, messages value)`` per stored
    row, in order. Why not :class:`Row` objects: a batch delivered and settled whole is never
    decoded on the host (the value goes to the isolate as it is); :meth:`rows` decodes it
    when the outcome differs per message."""

    parts: list[tuple[int, int, bytes]]
    count: int

    def rows(self) -> list[Row]:
        return [Row(seq, m[0], m[1], m[2], m[3], m[4], attempts)
                for seq, attempts, blob in self.parts for m in unpack(blob)]


class QueueStore:
    """All SQL of the queues binding; one instance per host, used from the event loop only."""

    def __init__(self, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.conn = conn
        self._acked_since_trim: dict[str, int] = {}
        #: open :meth:`transaction` scopes (0: none; writes commit on their own)
        self._depth = 0
        if not read_only:
            schema.install(conn)
        #: a file of an older edgelet read as it is (the offline CLI): only summaries
        self.legacy = read_only and schema_version(conn) < 2 and _has_table(conn, "queue_messages")
        self._seq = 0 if self.legacy else int(conn.execute(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'queue_batches'), 0),"
            " COALESCE((SELECT MAX(seq) FROM queue_batches), 0))").fetchone()[0])

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction: a crash leaves all of it or none of it. Inside
        :meth:`transaction` it is part of that one (committed with it)."""
        if self._depth:
            yield self.conn
            return
        with self.transaction():
            yield self.conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction around several writes (the sends of a channel read and the takes
        they make due; a batch's settle and the next take), committed once at the end.

        Why: each COMMIT writes the WAL frames of every page it dirtied and takes the WAL
        locks (a dozen system calls); a batch's insert, take and settle touch the same
        pages, so one commit for what happens together costs a third of three."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite ends it by itself on some errors (disk full)
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _row(self, queue: str, state: int, visible_at: float, attempts: int, done_at: float | None,
             messages: Sequence[Row]) -> tuple[Any, ...]:
        """INSERT parameters for a new stored row holding ``messages``."""
        return self._packed_row(queue, state, visible_at, attempts, done_at,
                                [[m.origin, m.id, m.timestamp_ms, m.content_type, m.body] for m in messages])

    def _packed_row(self, queue: str, state: int, visible_at: float, attempts: int, done_at: float | None,
                    messages: Sequence[Packed]) -> tuple[Any, ...]:
        """INSERT parameters for a new stored row holding ``[origin, id, ts, type, body]`` lists;
        the packed value comes last."""
        return (self._next_seq(), queue, state, visible_at, attempts, done_at, len(messages),
                min(m[0] for m in messages), min(m[2] for m in messages), pack(messages))

    # -- writes ---------------------------------------------------------------------
    def register(self, queues: Sequence[str]) -> None:
        """Remember queue names so ``queues list`` shows them even while empty."""
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", [(q,) for q in queues])

    def insert(self, queue: str, rows: Sequence[tuple[str, int, str, bytes, float]]) -> None:
        """Store ``(id, timestamp_ms, content_type, body, visible_at)`` rows, committed.

        Messages with the same ``visible_at`` (a sendBatch without per-message delays: all
        of them) share one stored row; their origins keep the order given."""
        params = []
        chunk: list[tuple[str, int, str, bytes, float]] = []
        for message in rows:
            if chunk and (message[4] != chunk[0][4] or len(chunk) >= schema.ROW_MESSAGES):
                params.append(self._send_row(queue, chunk))
                chunk = []
            chunk.append(message)
        if chunk:
            params.append(self._send_row(queue, chunk))
        with self._tx() as c:
            c.executemany(_INSERT, params)

    def insert_wire(self, queue: str, ts: int, visible_at: float, ids: Sequence[str],
                    wire: Sequence[Sequence[Any]]) -> None:
        """Store one send whose messages all fall due at ``visible_at`` (at most
        ``2**ORIGIN_BITS``), straight from its wire form ``[content_type, body, delay]``:
        one row, no intermediate tuples. Committed (or part of :meth:`transaction`)."""
        seq = self._next_seq()
        base = seq << schema.ORIGIN_BITS
        blob = pack([[base + i, mid, ts, item[0], item[1]]
                     for i, (mid, item) in enumerate(zip(ids, wire, strict=True))])
        with self._tx() as c:
            c.execute(_INSERT, (seq, queue, PENDING, visible_at, 0, None, len(ids), base, ts, blob))

    def _send_row(self, queue: str, chunk: Sequence[tuple[str, int, str, bytes, float]]) -> tuple[Any, ...]:
        seq = self._next_seq()
        base = seq << schema.ORIGIN_BITS
        return (seq, queue, PENDING, chunk[0][4], 0, None, len(chunk), base, min(m[1] for m in chunk),
                pack((base + i, m[0], m[1], m[2], m[3]) for i, m in enumerate(chunk)))

    def recover(self, now: float) -> int:
        """After a restart nothing is in flight any more: make those messages due again."""
        with self._tx() as c:
            moved = c.execute("SELECT COALESCE(SUM(count), 0) FROM queue_batches WHERE state = ?",
                              (INFLIGHT,)).fetchone()[0]
            c.execute("UPDATE queue_batches SET state = ?, visible_at = ? WHERE state = ?",
                      (PENDING, now, INFLIGHT))
            return int(moved)

    def take(self, queue: str, now: float, limit: int) -> Taken:
        """Mark up to ``limit`` due messages in flight (attempts + 1) and return them in order.

        Whole stored rows are taken with one UPDATE; a row holding more than is still
        wanted is split: the part taken becomes a new in-flight row, the rest stays pending
        under its old ``seq`` (so it keeps its place in line)."""
        parts: list[tuple[int, int, bytes]] = []
        count = 0
        with self._tx() as c:
            # rows are read only as far as they are needed (a row holds up to 100 messages,
            # so the LIMIT alone would read up to `limit` whole rows for one batch)
            found: list[tuple[int, int, int, bytes]] = []
            for row in c.execute(
                    "SELECT seq, attempts, count, messages FROM queue_batches WHERE queue = ? AND state = ?"
                    " AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?", (queue, PENDING, now, limit)):
                found.append(row)
                count += row[2]
                if count >= limit:
                    break
            count = 0
            whole: list[int] = []
            for seq, attempts, n, blob in found:
                want = limit - count
                if want <= 0:
                    break
                if n <= want:
                    whole.append(seq)
                    parts.append((seq, attempts + 1, blob))
                    count += n
                    continue
                messages = unpack(blob)
                part, rest = messages[:want], messages[want:]
                new = self._packed_row(queue, INFLIGHT, now, attempts + 1, None, part)
                c.execute(_INSERT, new)
                c.execute("UPDATE queue_batches SET count = ?, first = ?, oldest_ms = ?, messages = ?"
                          " WHERE seq = ?", (len(rest), min(m[0] for m in rest), min(m[2] for m in rest),
                                             pack(rest), seq))
                parts.append((new[0], attempts + 1, new[-1]))
                count += want
            for chunk in _chunks(whole):
                c.execute(f"UPDATE queue_batches SET state = {INFLIGHT}, attempts = attempts + 1"
                          f" WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
        return Taken(parts, count)

    def release(self, seqs: Sequence[int], visible_at: float) -> None:
        """Put taken rows back as they were before :meth:`take` (pending, attempts - 1):
        their delivery never reached a handler, so it is not an attempt."""
        with self._tx() as c:
            for chunk in _chunks(seqs):
                c.execute(f"UPDATE queue_batches SET state = {PENDING}, attempts = attempts - 1,"
                          f" visible_at = ? WHERE seq IN ({','.join('?' * len(chunk))})"
                          f" AND state = {INFLIGHT}", (visible_at, *chunk))

    def settle(self, queue: str, now: float, acked: Sequence[Row],
               retried: Sequence[tuple[Row, float]], dead: Sequence[Row],
               dead_letter_queue: str | None) -> None:
        """Record a batch's outcome, message by message, in one transaction.

        A stored row whose messages all had the same outcome is updated in place; one whose
        messages parted ways is replaced by one row per outcome."""
        outcomes: dict[int, dict[tuple[int, float], list[Row]]] = {}
        for row in acked:
            outcomes.setdefault(row.seq, {}).setdefault((ACKED, now), []).append(row)
        for row, when in retried:
            outcomes.setdefault(row.seq, {}).setdefault((PENDING, when), []).append(row)
        for row in dead:
            outcomes.setdefault(row.seq, {}).setdefault((DEAD, now), []).append(row)
        in_place: list[tuple[int, int, float]] = []
        splits: list[tuple[int, dict[tuple[int, float], list[Row]]]] = []
        for seq, groups in outcomes.items():
            if len(groups) == 1:
                state, when = next(iter(groups))
                in_place.append((seq, state, when))
            else:
                splits.append((seq, groups))
        self._settle(queue, now, in_place, splits, len(acked), len(dead), dead_letter_queue)

    def settle_whole(self, queue: str, now: float, outcomes: Sequence[tuple[int, int, float]],
                     acked: int, dead: int, dead_letter_queue: str | None) -> None:
        """Record a batch's outcome where every stored row had one outcome for all its
        messages: ``(seq, ACKED | PENDING | DEAD, when)`` per row; no message is decoded."""
        self._settle(queue, now, outcomes, [], acked, dead, dead_letter_queue)

    def _settle(self, queue: str, now: float, in_place: Sequence[tuple[int, int, float]],
                splits: Sequence[tuple[int, dict[tuple[int, float], list[Row]]]], acked: int, dead: int,
                dead_letter_queue: str | None) -> None:
        """One transaction, before anything else happens: rows updated in place (grouped
        into one UPDATE per outcome), split rows replaced, the queue's totals counted."""
        grouped: dict[tuple[int, float], list[int]] = {}
        for seq, state, when in in_place:
            grouped.setdefault((state, when), []).append(seq)
        with self._tx() as c:
            for seq, groups in splits:
                c.execute("DELETE FROM queue_batches WHERE seq = ?", (seq,))
                for (state, when), rows in groups.items():
                    c.execute(_INSERT, self._outcome_row(queue, state, when, now, rows, dead_letter_queue))
            for (state, when), seqs in grouped.items():
                for chunk in _chunks(seqs):
                    marks = ",".join("?" * len(chunk))
                    if state == DEAD and dead_letter_queue:
                        # Moved, not copied: same id and timestamp, attempts start again in the DLQ.
                        c.execute(f"UPDATE queue_batches SET queue = ?, state = {PENDING}, attempts = 0,"
                                  f" visible_at = ? WHERE seq IN ({marks})", (dead_letter_queue, now, *chunk))
                    elif state == PENDING:
                        c.execute(f"UPDATE queue_batches SET state = {PENDING}, visible_at = ?"
                                  f" WHERE seq IN ({marks})", (when, *chunk))
                    else:
                        c.execute(f"UPDATE queue_batches SET state = {state}, done_at = ?, visible_at = ?"
                                  f" WHERE seq IN ({marks})", (now, now if state == ACKED else when, *chunk))
            if dead and dead_letter_queue:
                c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (dead_letter_queue,))
            c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (queue,))
            c.execute("UPDATE queue_stats SET acked = acked + ?, dead = dead + ? WHERE queue = ?",
                      (acked, dead, queue))
        if acked:
            count = self._acked_since_trim.get(queue, 0) + acked
            self._acked_since_trim[queue] = count
            if count >= ACKED_KEEP:
                self.trim_acked(queue)

    def _outcome_row(self, queue: str, state: int, when: float, now: float, rows: Sequence[Row],
                     dead_letter_queue: str | None) -> tuple[Any, ...]:
        if state == DEAD and dead_letter_queue:
            return self._row(dead_letter_queue, PENDING, now, 0, None, rows)
        if state == PENDING:
            return self._row(queue, PENDING, when, rows[0].attempts, None, rows)
        return self._row(queue, state, now if state == ACKED else when, rows[0].attempts, now, rows)

    def trim_acked(self, queue: str, keep: int = ACKED_KEEP) -> None:
        """Forget all but the ``keep`` most recently acked messages of ``queue``.

        Why through the index: acked rows sort there by (done_at, seq), so the newest are a
        short walk from the end and the delete a range; the row on the boundary keeps its
        newest messages only."""
        self._acked_since_trim[queue] = 0
        kept = 0
        boundary: tuple[float, int, int, bytes] | None = None
        for visible_at, seq, count in self.conn.execute(
                "SELECT visible_at, seq, count FROM queue_batches WHERE queue = ? AND state = ?"
                " ORDER BY visible_at DESC, seq DESC", (queue, ACKED)):
            kept += count
            if kept >= keep:
                boundary = (visible_at, seq, kept - keep, b"")
                break
        if boundary is None:
            return
        visible_at, seq, excess, _ = boundary
        with self._tx() as c:
            c.execute("DELETE FROM queue_batches WHERE queue = ? AND state = ?"
                      " AND (visible_at, seq) < (?, ?)", (queue, ACKED, visible_at, seq))
            if excess:
                blob = c.execute("SELECT messages FROM queue_batches WHERE seq = ?", (seq,)).fetchone()[0]
                rest = sorted(unpack(blob), key=lambda m: m[0])[excess:]  # the oldest sent go first
                c.execute("UPDATE queue_batches SET count = ?, first = ?, oldest_ms = ?, messages = ?"
                          " WHERE seq = ?", (len(rest), rest[0][0], min(m[2] for m in rest), pack(rest), seq))

    # -- reads ----------------------------------------------------------------------
    def due(self, queue: str, now: float, limit: int) -> tuple[int, float | None]:
        """How many messages are due (at most ``limit``) and when the oldest became due."""
        count, oldest = 0, None
        for n, visible_at in self.conn.execute(
                "SELECT count, visible_at FROM queue_batches WHERE queue = ? AND state = ? AND visible_at <= ?"
                " ORDER BY visible_at, seq LIMIT ?", (queue, PENDING, now, limit)):
            if oldest is None:
                oldest = visible_at
            count += n
            if count >= limit:
                return limit, oldest
        return count, oldest

    def next_visible(self, queue: str, now: float) -> float | None:
        """When the next delayed (or retry-delayed) message becomes due, if any."""
        return self.conn.execute(
            "SELECT MIN(visible_at) FROM queue_batches WHERE queue = ? AND state = ? AND visible_at > ?",
            (queue, PENDING, now)).fetchone()[0]

    def queues(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT queue FROM queue_stats ORDER BY queue")]

    def summary(self, queue: str, now: float) -> dict[str, Any]:
        """Counts for ``queues list``: backlog (pending, incl. delayed), in flight, totals."""
        table, count, oldest_ms = (("queue_messages", "1", "timestamp_ms") if self.legacy
                                   else ("queue_batches", "count", "oldest_ms"))
        counts = dict(self.conn.execute(
            f"SELECT state, SUM({count}) FROM {table} WHERE queue = ? AND state IN (?, ?)"
            " GROUP BY state", (queue, PENDING, INFLIGHT)).fetchall())
        delayed = self.conn.execute(
            f"SELECT COALESCE(SUM({count}), 0) FROM {table} WHERE queue = ? AND state = ? AND visible_at > ?",
            (queue, PENDING, now)).fetchone()[0]
        oldest = self.conn.execute(
            f"SELECT MIN({oldest_ms}) FROM {table} WHERE queue = ? AND state IN (?, ?)",
            (queue, PENDING, INFLIGHT)).fetchone()[0]
        stats = self.conn.execute("SELECT acked, dead FROM queue_stats WHERE queue = ?",
                                  (queue,)).fetchone() or (0, 0)
        return {
            "backlog": counts.get(PENDING, 0), "delayed": delayed, "in_flight": counts.get(INFLIGHT, 0),
            "oldest_age_s": None if oldest is None else round(max(0.0, now - oldest / 1000.0), 3),
            "acked": stats[0], "dead": stats[1],
        }

    def messages(self, queue: str, state: int | None, limit: int = 10_000) -> list[tuple[Any, ...]]:
        """``(id, timestamp_ms, content_type, body, attempts, state)`` rows, oldest first
        (send order; acked ones in the order they were acked)."""
        sql = "SELECT state, attempts, done_at, first, count, messages FROM queue_batches WHERE queue = ?"
        args: list[Any] = [queue]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        acked = state == ACKED
        sql += " ORDER BY done_at, seq" if acked else " ORDER BY first"
        found: list[tuple[Any, ...]] = []  # (sort key, origin, row)
        last_key: Any = None
        for row_state, attempts, done_at, first, _count, blob in self.conn.execute(sql, args):
            # rows come sorted by their first message; once `limit` are found, a row starting
            # after the last of them cannot hold an earlier one
            if len(found) >= limit and (done_at > last_key[0] if acked else first > last_key):
                break
            for origin, mid, ts, ct, body in unpack(blob):
                found.append(((done_at, origin) if acked else origin, (mid, ts, ct, body, attempts, row_state)))
            found.sort(key=lambda f: f[0])
            del found[limit:]
            last_key = found[-1][0] if found else None
        return [f[1] for f in found]


    # -- browsing (control API, explorer) ---------------------------------------------
    def page(self, queue: str, state: int, now: float, *, retrying: bool | None = None,
             after: tuple[float, int, int] | None = None, limit: int = 50) -> list[tuple[Any, ...]]:
        """One page of ``queue``'s messages in ``state``, in the order they fall due.

        Why keyset on ``(visible_at, seq)``: that is the order of the ``queue_batches_due``
        index, so page 20,000 of a million-message backlog costs one index probe, as page 1
        does; within a stored row messages follow their send order (``origin``). ``after`` is
        ``(visible_at, seq, origin)`` of the last message of the previous page. ``retrying``
        keeps only messages already tried (True) or never tried (False). Rows: ``("seq:origin",
        id, timestamp_ms, content_type, body, attempts, visible_at)``."""
        sql = "SELECT seq, visible_at, attempts, messages FROM queue_batches WHERE queue = ? AND state = ?"
        args: list[Any] = [queue, state]
        if retrying is True:
            sql += " AND attempts > 0"
        elif retrying is False:
            sql += " AND attempts = 0"
        if after is not None:
            sql += " AND (visible_at, seq) >= (?, ?)"
            args += [after[0], after[1]]
        sql += " ORDER BY visible_at, seq"
        out: list[tuple[Any, ...]] = []
        for seq, visible_at, attempts, blob in self.conn.execute(sql, args):
            for origin, mid, ts, ct, body in sorted(unpack(blob), key=lambda m: m[0]):
                if after is not None and (visible_at, seq) == (after[0], after[1]) and origin <= after[2]:
                    continue
                out.append((f"{seq}:{origin}", mid, ts, ct, body, attempts, visible_at))
                if len(out) >= limit:
                    return out
        return out

    def count(self, queue: str, state: int, *, retrying: bool | None = None) -> int:
        """How many of ``queue``'s messages are in ``state`` (one index range sum)."""
        sql = "SELECT COALESCE(SUM(count), 0) FROM queue_batches WHERE queue = ? AND state = ?"
        if retrying is True:
            sql += " AND attempts > 0"
        elif retrying is False:
            sql += " AND attempts = 0"
        return int(self.conn.execute(sql, (queue, state)).fetchone()[0])

    def move(self, queue: str, message_id: str, to: str, now: float) -> bool:
        """Put a waiting or dead message of ``queue`` back in ``to``, due now, attempts from
        zero (same id and timestamp, as the move into a dead-letter queue keeps them). The
        rest of its stored row stays as it was. False when ``queue`` holds no such message
        outside delivery."""
        with self._tx() as c:
            rows = c.execute(f"SELECT seq, state, visible_at, attempts, done_at, messages FROM queue_batches"
                             f" WHERE queue = ? AND state IN ({PENDING}, {DEAD})", (queue,)).fetchall()
            for seq, state, visible_at, attempts, done_at, blob in rows:
                messages = unpack(blob)
                found = [m for m in messages if m[1] == message_id]
                if not found:
                    continue
                rest = [m for m in messages if m[1] != message_id]
                c.execute("DELETE FROM queue_batches WHERE seq = ?", (seq,))
                if rest:
                    c.execute(_INSERT, self._packed_row(queue, state, visible_at, attempts, done_at, rest))
                c.execute(_INSERT, self._packed_row(to, PENDING, now, 0, None, found))
                c.execute("INSERT OR IGNORE INTO queue_stats (queue) VALUES (?)", (to,))
                return True
        return False

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` that is not being delivered; how many went.
        (Messages in flight finish their delivery; their outcome then updates no row.)"""
        with self._tx() as c:
            gone = int(c.execute(f"SELECT COALESCE(SUM(count), 0) FROM queue_batches WHERE queue = ?"
                                 f" AND state != {INFLIGHT}", (queue,)).fetchone()[0])
            c.execute(f"DELETE FROM queue_batches WHERE queue = ? AND state != {INFLIGHT}", (queue,))
        return gone

def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _chunks(values: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    """Slices of at most ``size``, under SQLite's limit on bound parameters."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
