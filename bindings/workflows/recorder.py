"""What a running instance records: step results, retries, sleeps and event waits.

Why a module of its own: these calls arrive from the isolate (through the internal binding,
see ``isolate.py``) once per step, so they are the hot path, and they carry the durability
promise: each record is committed before the step's caller sees the value. Records that
arrive in the same loop turn share one transaction (group commit) so that the commit is not
the cost of a step. The functions at the bottom (events and timeouts as history values) are
shared with ``runner.py``, which resolves due waits before a dispatch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from edgelet.bindings.workflows import codec, rules, views, wire
from edgelet.bindings.workflows.state import StaleRunError, State

log = logging.getLogger("edgelet.workflows")


class Recorder:
    """Commits the history rows a run reports, each before its caller goes on."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.clock = state.clock
        self.db = state.db
        self._step_seq = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM steps").fetchone()[0])
        # one commit for every record of a loop turn; each caller answered after it
        self._committed = state.committed

    def _live(self, workflow: str, instance_id: str, generation: int) -> tuple[int, str]:
        """The instance's ``(seq, status)`` if this run still owns it; else StaleRunError.

        Why: a restart or terminate bumps ``generation`` while the old run may still be
        executing; its records must not land in the new history.
        """
        row = self.db.execute("SELECT seq, status, generation FROM instances WHERE workflow = ? AND id = ?",
                              (workflow, instance_id)).fetchone()
        if row is None or row[2] != generation or row[1] not in ("running", "waitingForPause"):
            state = "gone" if row is None else row[1]
            raise StaleRunError(f"instance '{instance_id}' of workflow '{workflow}' is no longer run "
                                f"by this dispatch ({state}); nothing more is recorded")
        return row[0], row[1]

    def _next_step_seq(self) -> int:
        self._step_seq += 1
        return self._step_seq

    def _upsert_step(self, seq: int, name: str, count: int, kind: str, state: str, *,
                     value: bytes | None = None, error: tuple[str | None, str | None] = (None, None),
                     config: str | None = None, started: float, ended: float | None,
                     wake_at: float | None = None) -> None:
        """Insert the step's row, or update an existing one's outcome (``started``, ``seq`` and
        ``kind`` stay as first recorded)."""
        self.db.execute(
            "INSERT INTO steps (instance, name, count, seq, kind, state, value, error_name, error_message, "
            "config, started, ended, wake_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(instance, name, count) DO UPDATE SET state = excluded.state, value = excluded.value, "
            "error_name = excluded.error_name, error_message = excluded.error_message, "
            "config = excluded.config, ended = excluded.ended, wake_at = excluded.wake_at",
            (seq, name, count, self._next_step_seq(), kind, state, value, error[0], error[1], config,
             started, ended, wake_at))

    def _record_attempts(self, seq: int, name: str, count: int, first: int,
                         attempts: list[wire.Attempt], now: float) -> float:
        """Store attempts timed backwards from ``now`` (durations are measured in the isolate)."""
        end = now
        rows = []
        for i in range(len(attempts) - 1, -1, -1):
            a = attempts[i]
            start = end - max(float(a.duration_s), 0.0)
            rows.append((seq, name, count, first + i, start, end, 1 if a.success else 0, a.error_name,
                         a.error_message))
            end = start
        self.db.executemany(
            "INSERT OR REPLACE INTO attempts (instance, name, count, attempt, started, ended, success, "
            "error_name, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return end

    async def step_done(self, args: list[Any]) -> dict[str, Any]:
        """A step finished for good (ok, or failed with no retry left); committed before return."""
        r = wire.StepDone(*args)
        workflow, instance_id, name, count, state = r.workflow, r.instance, r.name, r.count, r.state
        attempts, first = wire.attempts_of(r.attempts), r.first

        def op() -> str:
            seq, status = self._live(workflow, instance_id, r.generation)
            now = self.clock.now()
            start = self._record_attempts(seq, name, count, first, attempts, now)
            # a row from an earlier attempt keeps its `started` (the upsert leaves it alone)
            self._upsert_step(seq, name, count, "step", state, value=r.value,
                              error=(r.error_name, r.error_message), config=r.config,
                              started=start, ended=now)
            return status

        status = await self._committed(op)
        if log.isEnabledFor(logging.INFO):
            took = sum(float(a.duration_s) for a in attempts) * 1000
            tries = f" after {first + len(attempts) - 1} attempts" if first + len(attempts) > 2 else ""
            if state == "ok":
                log.info("WORKFLOW %s/%s step '%s' #%d ok%s (%.1f ms)", workflow, instance_id, name,
                         count, tries, took)
            else:
                log.info("WORKFLOW %s/%s step '%s' #%d failed%s: %s: %s", workflow, instance_id, name,
                         count, tries, r.error_name, r.error_message)
        self.state.notify(workflow, instance_id)
        return {"pause": status == "waitingForPause"}

    async def step_retry(self, args: list[Any]) -> dict[str, Any]:
        """An attempt failed and a retry is due after a delay: record it, then the run unwinds."""
        r = wire.StepRetry(*args)
        workflow, instance_id, generation, name, count = r.workflow, r.instance, r.generation, r.name, r.count
        attempts, config, first, delay = wire.attempts_of(r.attempts), r.config, r.first, r.delay_s

        def op() -> float:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            at = now + float(delay)
            existing = self.db.execute("SELECT started FROM steps WHERE instance = ? AND name = ? AND "
                                       "count = ?", (seq, name, count)).fetchone()
            start = self._record_attempts(seq, name, count, first, attempts, now)
            self._upsert_step(seq, name, count, "step", "retrying", config=config,
                              started=existing[0] if existing else start, ended=None, wake_at=at)
            return at

        at = await self._committed(op)
        last = attempts[-1]
        log.info("WORKFLOW %s/%s step '%s' #%d attempt %d failed (%s: %s); retry in %s", workflow,
                 instance_id, name, count, first + len(attempts) - 1, last.error_name, last.error_message,
                 rules.describe_s(float(delay)))
        self.state.notify(workflow, instance_id)
        return {"at": at}

    async def sleep(self, args: list[Any]) -> dict[str, Any]:
        """A new sleep: record its end; done at once when that is not in the future."""
        r = wire.Sleep(*args)
        workflow, instance_id, generation, name, count = r.workflow, r.instance, r.generation, r.name, r.count
        seconds, until = r.seconds, r.until

        def op() -> tuple[float, float]:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            end = float(until) if until is not None else now + float(seconds or 0)
            done = end <= now
            self._upsert_step(seq, name, count, "sleep", "ok" if done else "pending", started=now,
                              ended=now if done else None, wake_at=end)
            return now, end

        now, end = await self._committed(op)
        done = end <= now
        log.info("WORKFLOW %s/%s sleep '%s' #%d %s", workflow, instance_id, name, count,
                 "over at once" if done else f"until {views.iso(end)} ({rules.describe_s(end - now)})")
        self.state.notify(workflow, instance_id)
        return {"done": True} if done else {"at": end}

    async def wait_event(self, args: list[Any]) -> dict[str, Any]:
        """A new waitForEvent: take a buffered (or mocked) event, or record the wait."""
        r = wire.WaitEvent(*args)
        workflow, instance_id, generation, name, count = r.workflow, r.instance, r.generation, r.name, r.count
        event_type, timeout_s, mock = r.event_type, r.timeout_s, r.mock
        config = json.dumps({"type": event_type, "timeout": timeout_s})

        def op() -> dict[str, Any]:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            if mock == "timeout":
                message = wait_timeout_message(name, event_type, timeout_s)
                self._upsert_step(seq, name, count, "waitForEvent", "failed", config=config, started=now,
                                  ended=now, error=("WorkflowTimeoutError", message))
                return {"error": {"name": "WorkflowTimeoutError", "message": message}}
            if isinstance(mock, dict):
                value: bytes | None = event_value(mock.get("payload"), now, event_type)
            else:
                value = take_event(self.db, seq, event_type, name, count)
            if value is not None:
                self._upsert_step(seq, name, count, "waitForEvent", "ok", value=value, config=config,
                                  started=now, ended=now)
                return {"value": value}
            at = now + float(timeout_s)
            self._upsert_step(seq, name, count, "waitForEvent", "pending", config=config,
                              started=now, ended=None, wake_at=at)
            return {"at": at}

        result = await self._committed(op)
        if "value" in result:
            log.info("WORKFLOW %s/%s waitForEvent '%s' #%d got event '%s'", workflow, instance_id, name,
                     count, event_type)
        elif "at" in result:
            log.info("WORKFLOW %s/%s waitForEvent '%s' #%d waits for '%s' until %s", workflow,
                     instance_id, name, count, event_type, views.iso(result["at"]))
        self.state.notify(workflow, instance_id)
        return result


# -- history values, shared with runner.py (it resolves due waits before a dispatch) ----------
def take_event(db: sqlite3.Connection, seq: int, event_type: str, name: str, count: int) -> bytes | None:
    """Consume the oldest buffered event of a type (inside a transaction); its stored form."""
    ev = db.execute("SELECT seq, payload, timestamp FROM events WHERE instance = ? AND type = ? "
                    "AND consumed_by IS NULL ORDER BY seq LIMIT 1", (seq, event_type)).fetchone()
    if ev is None:
        return None
    db.execute("UPDATE events SET consumed_by = ? WHERE seq = ?", (f"{name}#{count}", ev[0]))
    return event_value(ev[1], ev[2], event_type)


def event_value(payload: bytes | None, timestamp: float, event_type: str) -> bytes:
    """What ``wait_for_event`` returns: ``{payload, timestamp, type}``, encoded."""
    import datetime as _dt
    return codec.encode({"payload": codec.decode(payload),
                         "timestamp": _dt.datetime.fromtimestamp(timestamp, tz=_dt.UTC),
                         "type": event_type}, limit=2 * codec.MAX_VALUE_BYTES)


def wait_timeout_message(name: str, event_type: str, timeout_s: Any) -> str:
    took = rules.describe_s(float(timeout_s)) if timeout_s is not None else "its timeout"
    return (f"waitForEvent '{name}' timed out after {took} without an event of type '{event_type}'")

