"""Instance events for ``subscribe``: the retained history, then live events, with cursors.

Why a module of its own: every other part *emits* events (the engine on status changes,
the recorder on step records, the runner when a wait resolves) and ``subscribe`` readers
(the Worker binding, the SSE route, test handles) consume them; this is the one place
that knows their shape, their ids and how they are stored.

Events use Cloudflare's types (``EVENT_TYPES``). ``eventId`` grows across the whole
database and is the cursor: a subscription resumes after it. Why events are buffered
and written together every ``FLUSH_AFTER_S`` in a transaction of their own, rather than in
each step record's: they are the story of what happened, not the durable state (that is
``steps``, ``instances``...). A commit of their own per step made a step a third slower,
and riding along with the next step record's commit still added two B-tree pages (the
table's and its index's) to every step's WAL commit; one commit per ``FLUSH_AFTER_S``
carries the events of dozens of steps in a few pages. A ``kill -9`` may lose the events of
the last ``FLUSH_AFTER_S``, never a step. Live subscribers get each event at once, before
it is written.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import codec, rules, views

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.workflows.state import State

EVENT_TYPES = (
    "workflow.queued", "workflow.started", "workflow.paused", "workflow.resumed", "workflow.completed",
    "workflow.errored", "workflow.terminated",
    "step.started", "step.completed", "step.failed",
    "attempt.started", "attempt.failed",
    "sleep.started", "sleep.completed",
    "wait.started", "wait.completed", "wait.timedOut",
    "rollback.started", "rollback.completed", "rollback.failed",
)
#: the events after which an instance emits nothing more (a subscription ends there)
TERMINAL = ("workflow.completed", "workflow.errored", "workflow.terminated")
#: events one poll returns at most
PAGE = 500
#: buffered events are written together after this long (one commit for all of them)
FLUSH_AFTER_S = 0.02

#: (eventId, instance seq, type, timestamp, step, count, attempt, data JSON, output blob)
Row = tuple[int, int, str, float, str | None, int | None, int | None, str | None, bytes | None]
#: a stored row: :data:`Row` and ``started`` (set: the row stands for three events, see :func:`expand`)
Stored = tuple[int, int, str, float, str | None, int | None, int | None, str | None, bytes | None, float | None]
_COLUMNS = "id, instance, type, timestamp, step, count, attempt, data, output, started"
#: the stored output of a ``sensitive`` step's event
REDACTED_BLOB = codec.encode(rules.REDACTED)


def parse_filter(value: Any, workflow: str) -> frozenset[str] | None:
    """``filter``: None, one type or a list; a family (``"step"``) means all its types."""
    if value is None or value == [] or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise TypeError(f"subscribe on workflow '{workflow}': filter must be an event type or a list of "
                        f"them, got {type(value).__name__}")
    chosen: set[str] = set()
    for item in items:
        item = item.strip()
        family = [t for t in EVENT_TYPES if t.split(".")[0] == item]
        if item in EVENT_TYPES:
            chosen.add(item)
        elif family:
            chosen.update(family)
        else:
            raise ValueError(f"subscribe on workflow '{workflow}': filter names unknown event type {item!r}; "
                             f"use one of {', '.join(EVENT_TYPES)} or a family (workflow, step, attempt, "
                             f"sleep, wait, rollback)")
    return frozenset(chosen)


def expand(stored: Stored) -> list[Row]:
    """The events a stored row stands for: itself, or, for a step that succeeded at its first
    attempt (``started`` set, schema version 5), its ``step.started``, ``attempt.started``
    and ``step.completed``, with the eventIds and times they would have had as three rows."""
    started = stored[9]
    if started is None:
        return [stored[:9]]
    event_id, seq, _kind, ts, step, count, _attempt, data, output, _ = stored
    return [(event_id - 2, seq, "step.started", started, step, count, None, None, None),
            (event_id - 1, seq, "attempt.started", started, step, count, 1, None, None),
            (event_id, seq, "step.completed", ts, step, count, None, data, output)]


def to_event(row: Row) -> dict[str, Any]:
    """The dict a subscriber gets: ``{eventId, type, timestamp, step?, attempt?, error?, output?}``."""
    event_id, _seq, kind, ts, step, count, attempt, data, output = row
    out: dict[str, Any] = {"eventId": event_id, "type": kind, "timestamp": views.iso(ts)}
    if step is not None:
        out["step"] = {"name": step, "count": count}
    if attempt is not None:
        out["attempt"] = attempt
    if data:
        out.update(json.loads(data))
    if output is not None:  # decoded only when someone reads it
        out["output"] = codec.to_json(codec.decode(output))
    return out


class EventLog:
    """Assigns event ids, feeds live subscribers, and writes events once per loop turn."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.db = state.db
        self.next_id = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM history_events").fetchone()[0]) + 1
        self._buffer: list[Stored] = []
        self._flush_soon = False
        self._timer: asyncio.TimerHandle | None = None
        #: instance seq -> queues of its live subscribers
        self._live: dict[int, set[asyncio.Queue[Row]]] = {}

    # -- writing ---------------------------------------------------------------------------------
    def emit(self, seq: int, kind: str, ts: float, step: str | None = None, count: int | None = None,
             attempt: int | None = None, output: bytes | None = None, **data: Any) -> None:
        """One event; ``output`` is the codec-encoded value (kept as is until read)."""
        row: Stored = (self.next_id, seq, kind, ts, step, count, attempt,
                       json.dumps(data, separators=(",", ":")) if data else None, output, None)
        self.next_id += 1
        self._store(row)

    def emit_step_ok(self, seq: int, step: str, count: int, started: float, ts: float,
                     output: bytes | None) -> None:
        """``step.started``, ``attempt.started`` (attempt 1) and ``step.completed`` of a step
        that succeeded at its first attempt: three eventIds, one stored row (see :func:`expand`)."""
        row: Stored = (self.next_id + 2, seq, "step.completed", ts, step, count, None, None, output, started)
        self.next_id += 3
        self._store(row)

    def _store(self, row: Stored) -> None:
        self._buffer.append(row)
        queues = self._live.get(row[1])
        if queues:
            for event in expand(row):
                for queue in queues:
                    queue.put_nowait(event)
        if not self._flush_soon:
            self._flush_soon = True
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._flush_later)
            except RuntimeError:  # no loop (a synchronous caller): write now
                self.flush()

    def has_buffered(self) -> bool:
        return bool(self._buffer)

    def take(self) -> list[Stored]:
        """The buffered events, handed to a caller that writes them in its own transaction."""
        rows, self._buffer = self._buffer, []
        return rows

    def put_back(self, rows: list[Stored]) -> None:
        """Rows a failed transaction did not write: keep them for the next one."""
        self._buffer = rows + self._buffer

    def insert(self, rows: list[Stored]) -> None:
        """Write rows inside the caller's transaction."""
        self.db.executemany(f"INSERT INTO history_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        """The engine stops: write what is buffered now; the timer must not outlive the database."""
        self.flush()

    def flush(self, *, wait: bool = True) -> None:
        """Write buffered events now (one transaction of their own). ``wait=False`` (the
        timer's flush): if the write lock is held (an isolate committing its own steps,
        see local.py), keep the events and try again after ``FLUSH_AFTER_S`` rather than
        stall the host's loop in SQLite's busy handler for a millisecond or more."""
        self._flush_soon = False
        if self._timer is not None:
            self._timer.cancel()  # harmless when it is the one firing now
            self._timer = None
        rows = self.take()
        if not rows:
            return
        try:
            with self.state.tx(wait=wait):
                self.insert(rows)
        except sqlite3.OperationalError as exc:
            self.put_back(rows)
            if wait or exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # and its extended codes
                raise
            self._flush_soon = True
            self._timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._flush_later)
        except sqlite3.Error:
            self.put_back(rows)  # a full disk: try again with the next ones
            raise

    def _flush_later(self) -> None:
        self.flush(wait=False)

    # -- reading ---------------------------------------------------------------------------------
    def after(self, seq: int, cursor: int, limit: int = PAGE) -> list[Row]:
        """The instance's events after ``cursor``, from at most ``limit`` stored rows (as
        many events or more: a row may stand for three)."""
        self.flush()
        # a row standing for three events holds the last one's id: the one just past the
        # cursor may hold events after it
        stored = self.db.execute(f"SELECT {_COLUMNS} FROM history_events WHERE instance = ? AND id > ? "
                                 "ORDER BY id LIMIT ?", (seq, cursor, limit)).fetchall()
        return [row for s in stored for row in expand(s) if row[0] > cursor]

    def check_cursor(self, seq: int, cursor: Any, workflow: str, instance_id: str) -> int:
        """A cursor must be an ``eventId`` of this instance (0 or None: from the start)."""
        if cursor is None or cursor == "":
            return 0
        try:
            value = int(cursor)
        except (TypeError, ValueError):
            raise ValueError(f"subscribe on workflow '{workflow}': cursor must be an eventId (a whole "
                             f"number), got {cursor!r}") from None
        if value == 0:
            return 0
        self.flush()
        # the id of a row, or of an event a later row of the same step stands for (expand)
        if self.db.execute("SELECT 1 FROM history_events WHERE instance = ? AND id BETWEEN ? AND ? AND "
                           "(id = ? OR started IS NOT NULL)", (seq, value, value + 2, value)).fetchone():
            return value
        raise ValueError(f"subscribe on workflow '{workflow}': unknown cursor {value} for instance "
                         f"'{instance_id}'; pass an eventId this instance emitted (or no cursor to start "
                         f"from its first event)")

    async def subscribe(self, seq: int, types: frozenset[str] | None, cursor: int,
                        finished: Callable[[], bool]) -> AsyncIterator[dict[str, Any]]:
        """Retained events after ``cursor``, then live ones, until the instance ends."""
        async for batch in self.subscribe_batches(seq, types, cursor, finished):
            for event in batch:
                yield event

    async def subscribe_batches(self, seq: int, types: frozenset[str] | None, cursor: int,
                                finished: Callable[[], bool], linger: float = 0.0
                                ) -> AsyncIterator[list[dict[str, Any]]]:
        """:meth:`subscribe` a list at a time: every event already there, so a stream writes
        the events of one step (started, attempt, completed) in one go. ``linger``: after the
        first live event, wait that long for more before answering (an HTTP stream pays per
        write, and a busy instance makes its next events within milliseconds)."""
        queue: asyncio.Queue[Row] = asyncio.Queue()
        self._live.setdefault(seq, set()).add(queue)
        try:
            last = cursor
            while True:  # the retained history, page by page
                rows = self.after(seq, last)
                batch, last, _ended = _take(rows, last, types)
                if batch:
                    yield batch
                if len(rows) < PAGE:
                    break
            # the history ends in a terminal event, or the instance ended before events were
            # kept (an older state folder); a restarted one goes on, past its old run's end
            if finished():
                return
            while True:
                rows = [await queue.get()]
                if linger > 0 and rows[0][2] not in TERMINAL:
                    await asyncio.sleep(linger)
                while not queue.empty():
                    rows.append(queue.get_nowait())
                batch, last, ended = _take(rows, last, types)
                if batch:
                    yield batch
                if ended:
                    return
        finally:
            queues = self._live.get(seq)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._live[seq]

    async def poll(self, seq: int, types: frozenset[str] | None, cursor: int, wait_s: float,
                   finished: Callable[[], bool]) -> dict[str, Any]:
        """One page for a subscriber in another process: ``{events, last, done}``; waits up to
        ``wait_s`` for the next event when there is none yet."""
        queue: asyncio.Queue[Row] = asyncio.Queue()
        self._live.setdefault(seq, set()).add(queue)
        try:
            rows = self.after(seq, cursor)
            if not rows and not finished():
                try:
                    await asyncio.wait_for(queue.get(), wait_s)
                except TimeoutError:
                    pass
                rows = self.after(seq, cursor)
            events, last, ended = _take(rows, cursor, types)
            # a terminal event not followed by others ends it, unless the instance was
            # restarted since (it runs again): then the next poll waits for its new run
            done = (ended or not rows) and finished()
            return {"events": events, "last": last, "done": done}
        finally:
            queues = self._live.get(seq)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._live[seq]


def _take(rows: list[Row], last: int, types: frozenset[str] | None) -> tuple[list[dict[str, Any]], int, bool]:
    """The events of ``rows`` after ``last`` that pass ``types``; the new last id; ended (the
    last of them is terminal)? A terminal event followed by others is an instance's earlier
    run before a restart, not its end: those others are taken too."""
    out: list[dict[str, Any]] = []
    ended = False
    for row in rows:
        if row[0] <= last:
            continue
        last = row[0]
        if types is None or row[2] in types:
            out.append(to_event(row))
        ended = row[2] in TERMINAL
    return out, last, ended


def attempt_events(log: EventLog, seq: int, name: str, count: int, first: int, attempts: Iterable[Any],
                   now: float) -> None:
    """``step.started`` (for a first attempt) and ``attempt.started``/``attempt.failed`` for each
    attempt, timed backwards from ``now`` like the attempts table."""
    attempts = list(attempts)
    starts: list[tuple[float, float]] = []
    end = now
    for a in reversed(attempts):
        start = end - max(float(a.duration_s), 0.0)
        starts.append((start, end))
        end = start
    starts.reverse()
    for i, (a, (start, stop)) in enumerate(zip(attempts, starts, strict=True)):
        number = first + i
        if number == 1:
            log.emit(seq, "step.started", start, name, count)
        log.emit(seq, "attempt.started", start, name, count, number)
        if not a.success:
            log.emit(seq, "attempt.failed", stop, name, count, number,
                     error={"name": a.error_name, "message": a.error_message or ""})
