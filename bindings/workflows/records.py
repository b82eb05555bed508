"""The SQL of a run's records, shared by the host's recorder and the isolate's own writer.

Why a module of its own: a finished step is committed by whichever side holds the
database. With the state on disk the isolate that ran the step commits it itself
(``local.py``: one local commit per step instead of a round trip to the host); in memory,
on a virtual clock, or for an attempt the host was told about, the host does
(``recorder.py``). Both must write the same rows and refuse a stale run the same way, so
both call these functions, inside a transaction they opened.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edgelet.bindings.workflows import wire


class StaleRunError(Exception):
    """A run tried to record a step for an instance that was terminated, restarted, or
    handed to another run (the platform restarted, the isolate was replaced)."""


def live(db: sqlite3.Connection, workflow: str, instance_id: str, generation: int) -> tuple[int, str]:
    """The instance's ``(seq, status)`` if this run still owns it; else StaleRunError.

    Why: a restart or terminate bumps ``generation`` while the old run may still be
    executing; its records must not land in the new history. Read inside the record's
    own transaction, so no bump can slip in between the check and the write.
    """
    row = db.execute("SELECT seq, status, generation FROM instances WHERE workflow = ? AND id = ?",
                     (workflow, instance_id)).fetchone()
    if row is None or row[2] != generation or row[1] not in _OWNED:
        raise _stale(workflow, instance_id, row)
    return row[0], row[1]


#: the statuses in which a run may still record
_OWNED = ("running", "waitingForPause")


def _stale(workflow: str, instance_id: str, row: Any) -> StaleRunError:
    state = "gone" if row is None else row[1]
    return StaleRunError(f"instance '{instance_id}' of workflow '{workflow}' is no longer run "
                         f"by this dispatch ({state}); nothing more is recorded")


#: the next history position of an instance: ``seq`` orders one instance's rows (describe,
#: restart from a step), so it is counted per instance, in SQL, by whichever side writes
_NEXT_STEP = "COALESCE((SELECT MAX(seq) FROM steps WHERE instance = ?1), 0) + 1"
_NEXT_ROLLBACK = "COALESCE((SELECT MAX(seq) FROM rollbacks WHERE instance = ?1), 0) + 1"


_UPSERT_STEP = (
    "INSERT INTO steps (instance, name, count, seq, kind, state, value, error_name, error_message, "
    f"config, started, ended, wake_at) VALUES (?1, ?2, ?3, {_NEXT_STEP}, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
    "?11, ?12) ON CONFLICT(instance, name, count) DO UPDATE SET state = excluded.state, "
    "value = excluded.value, error_name = excluded.error_name, error_message = excluded.error_message, "
    "config = excluded.config, ended = excluded.ended, wake_at = excluded.wake_at")


def upsert_step(db: sqlite3.Connection, instance: int, name: str, count: int, kind: str, state: str, *,
                value: bytes | None = None, error: tuple[str | None, str | None] = (None, None),
                config: str | None = None, started: float, ended: float | None,
                wake_at: float | None = None) -> None:
    """Insert the step's row, or update an existing one's outcome (``started``, ``seq`` and
    ``kind`` stay as first recorded)."""
    db.execute(_UPSERT_STEP,
               (instance, name, count, kind, state, value, error[0], error[1], config, started, ended, wake_at))


def record_attempts(db: sqlite3.Connection, table: str, instance: int, name: str, count: int, first: int,
                    attempts: list[wire.Attempt], now: float) -> float:
    """Store attempts (``attempts`` or ``rollback_attempts``) timed backwards from ``now``
    (durations are measured in the isolate); returns when the first of them started."""
    end = now
    rows = []
    for i in range(len(attempts) - 1, -1, -1):
        a = attempts[i]
        start = end - max(float(a.duration_s), 0.0)
        rows.append((instance, name, count, first + i, start, end, 1 if a.success else 0, a.error_name,
                     a.error_message))
        end = start
    db.executemany(
        f"INSERT OR REPLACE INTO {table} (instance, name, count, attempt, started, ended, success, "
        "error_name, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return end


def record_step_attempts(db: sqlite3.Connection, instance: int, name: str, count: int, first: int,
                         attempts: list[wire.Attempt], now: float) -> float:
    """:func:`record_attempts` for a step, except that a step that succeeded at its first
    attempt stores none: that attempt is the step row's own start and end, and
    ``views.steps`` lists it from there. Why: it is nearly every step, and its row was one
    B-tree page more in every step's commit."""
    if first == 1 and len(attempts) == 1 and attempts[0].success:
        return now - max(float(attempts[0].duration_s), 0.0)
    return record_attempts(db, "attempts", instance, name, count, first, attempts, now)


def step_done(db: sqlite3.Connection, r: wire.StepDone, attempts: list[wire.Attempt],
              now: float) -> tuple[str, int]:
    """A step finished for good (ok, or failed with no retry left): its rows, inside the
    caller's transaction; ``(instance status, instance seq)``. StaleRunError if the run
    no longer owns the instance (nothing written)."""
    seq, status = live(db, r.workflow, r.instance, r.generation)
    start = record_step_attempts(db, seq, r.name, r.count, r.first, attempts, now)
    # a row from an earlier attempt keeps its `started` (the upsert leaves it alone)
    upsert_step(db, seq, r.name, r.count, "step", r.state, value=r.value, error=(r.error_name, r.error_message),
                config=r.config, started=start, ended=now)
    return status, seq


#: instances whose ownership one statement of :func:`steps_done` reads at most
_OWNERS_PER_QUERY = 500


def steps_done(db: sqlite3.Connection, items: list[tuple[wire.StepDone, list[wire.Attempt]]],
               now: float) -> list[tuple[str, int] | StaleRunError]:
    """:func:`step_done` for many records at once (the isolate's records of one loop turn,
    ``local.py``), inside the caller's transaction: per record ``(instance status, seq)``,
    or the StaleRunError of a run that no longer owns its instance (nothing written for it).

    Why: the same rows as one :func:`step_done` per record, with the liveness of every
    instance read in one query per workflow and the step rows written by one
    ``executemany`` in record order; per record, that was a SAVEPOINT, a SELECT, an INSERT
    and a RELEASE, each a statement's Python and SQLite overhead (a fifth of the isolate's
    time per step under 1,000 instances at once)."""
    wanted: dict[str, set[str]] = {}
    for r, _ in items:
        wanted.setdefault(r.workflow, set()).add(r.instance)
    owners: dict[tuple[str, str], tuple[int, str, int]] = {}
    for workflow, ids in wanted.items():
        listed = list(ids)
        for i in range(0, len(listed), _OWNERS_PER_QUERY):
            chunk = listed[i:i + _OWNERS_PER_QUERY]
            for instance_id, seq, status, generation in db.execute(
                    "SELECT id, seq, status, generation FROM instances WHERE workflow = ? AND id IN "
                    f"({','.join('?' * len(chunk))})", (workflow, *chunk)):
                owners[(workflow, instance_id)] = (seq, status, generation)
    out: list[tuple[str, int] | StaleRunError] = []
    rows: list[tuple[Any, ...]] = []
    for r, attempts in items:
        row = owners.get((r.workflow, r.instance))
        if row is None or row[2] != r.generation or row[1] not in _OWNED:
            out.append(_stale(r.workflow, r.instance, row))
            continue
        seq = row[0]
        if r.first == 1 and len(attempts) == 1 and attempts[0].success:  # record_step_attempts' rule
            start = now - max(float(attempts[0].duration_s), 0.0)
        else:
            if rows:  # written first: a step's history position is the order of its insert
                db.executemany(_UPSERT_STEP, rows)
                rows = []
            start = record_attempts(db, "attempts", seq, r.name, r.count, r.first, attempts, now)
        rows.append((seq, r.name, r.count, "step", r.state, r.value, r.error_name, r.error_message, r.config,
                     start, now, None))
        out.append((row[1], seq))
    if rows:
        db.executemany(_UPSERT_STEP, rows)
    return out


def rollback_row(db: sqlite3.Connection, instance: int, r: Any, state: str, attempts: list[wire.Attempt],
                 now: float, wake_at: float | None) -> None:
    """A rollback's attempts and its row (``r``: a RollbackDone or a Retry record)."""
    start = record_attempts(db, "rollback_attempts", instance, r.name, r.count, r.first, attempts, now)
    error = (getattr(r, "error_name", None), getattr(r, "error_message", None))
    db.execute(
        "INSERT INTO rollbacks (instance, name, count, seq, state, error_name, error_message, config, "
        f"started, ended, wake_at) VALUES (?1, ?2, ?3, {_NEXT_ROLLBACK}, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
        "ON CONFLICT(instance, name, count) DO UPDATE SET state = excluded.state, "
        "error_name = excluded.error_name, error_message = excluded.error_message, "
        "ended = excluded.ended, wake_at = excluded.wake_at",
        (instance, r.name, r.count, state, *error, r.config, start, None if state == "retrying" else now,
         wake_at))


def complete(db: sqlite3.Connection, workflow: str, instance_id: str, generation: int, output: bytes | None,
             now: float) -> str | None:
    """The run's outcome ``complete``, inside the caller's transaction: the status the
    instance had (``running`` or ``waitingForPause``), or None when this run no longer owns
    it (terminated or restarted meanwhile: nothing written, the host sorts it out)."""
    row = db.execute("SELECT seq, status, generation FROM instances WHERE workflow = ? AND id = ?",
                     (workflow, instance_id)).fetchone()
    if row is None or row[2] != generation or row[1] not in ("running", "waitingForPause"):
        return None
    db.execute("UPDATE instances SET status = 'complete', output = ?, ended = ?, modified = ? WHERE seq = ?",
               (output, now, now, row[0]))
    return str(row[1])
