"""What a running instance records: step results, retries, sleeps and event waits.

Why a module of its own: these calls arrive from the isolate (through the internal binding,
see ``isolate.py``) and carry the durability promise: each record is committed before the
step's caller sees the value. Records that arrive in the same loop turn share one
transaction (group commit) so that the commit is not the cost of a step. With the state on
disk, the per-step record (``step_done``) is committed by the isolate itself (``local.py``)
and reaches this module afterwards, as a note (:meth:`Recorder.apply_recorded`), for the
events, log line and watchers; the SQL of both paths is ``records.py``. The functions at
the bottom (events and timeouts as history values) are shared with ``runner.py``, which
resolves due waits before a dispatch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from edgelet.bindings.workflows import codec, records, rules, views, wire
from edgelet.bindings.workflows.events import REDACTED_BLOB, attempt_events
from edgelet.bindings.workflows.state import State

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.channel import Later

log = logging.getLogger("edgelet.workflows")
T = TypeVar("T")


class Recorder:
    """Commits the history rows a run reports, each before its caller goes on."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.clock = state.clock
        self.db = state.db
        #: this platform run; in-flight attempt rows of another run were cut off by a crash
        self.boot = time.time()
        #: (instance seq, step, count) with an attempts_in_flight row of this run
        self._in_flight: set[tuple[int, str, int]] = set()
        #: virtual clock: the platform-clock timeout of each running attempt
        self._timers: dict[tuple[str, str, str, int], Any] = {}
        #: set by the engine: sends a signal to the isolate running an instance
        self.signal: Any = None
        # one commit for every record of a loop turn; each caller answered after it
        self._committed = state.committed

    def _live(self, workflow: str, instance_id: str, generation: int) -> tuple[int, str]:
        return records.live(self.db, workflow, instance_id, generation)

    async def step_done(self, args: list[Any]) -> dict[str, Any]:
        """A step finished for good (ok, or failed with no retry left); committed before return."""
        r, attempts, op = self._step_done_write(args)
        return self._step_done_after(r, attempts, await self._committed(op))

    def step_done_later(self, args: list[Any], answer: Later) -> None:
        """:meth:`step_done` for the channel's synchronous path: the write joins the group
        commit and ``answer`` is resolved right after the COMMIT, when the channel settles
        its read (no task, no future; see ``edgelet.channel.Later``)."""
        r, attempts, op = self._step_done_write(args)

        def done(result: Any, error: BaseException | None) -> None:
            if error is None:
                try:
                    reply = self._step_done_after(r, attempts, result)
                except Exception as exc:  # the record is stored; tell the run what went wrong
                    error = exc
            if error is None:
                answer.resolve(reply)
            else:
                answer.fail(error)

        self.state.group.submit(op, done, flushed_by_caller=True)  # the channel settles its read

    def _step_done_write(self, args: list[Any]) -> tuple[wire.StepDone, list[wire.Attempt],
                                                         Callable[[], tuple[str, int, float]]]:
        r = wire.StepDone(*args)
        attempts = wire.attempts_of(r.attempts)
        self._cancel_timer(r.workflow, r.instance, r.name, r.count)

        def op() -> tuple[str, int, float]:
            now = self.clock.now()
            status, seq = records.step_done(self.db, r, attempts, now)
            self._clear_in_flight(seq, r.name, r.count)
            return status, seq, now

        return r, attempts, op

    def _step_done_after(self, r: wire.StepDone, attempts: list[wire.Attempt],
                         committed: tuple[str, int, float]) -> dict[str, Any]:
        """After the commit: events, log, watchers; the answer to the run."""
        status, seq, now = committed
        workflow, instance_id, name, count, state, first = r.workflow, r.instance, r.name, r.count, r.state, r.first
        events = self.state.events
        if state == "ok":
            redacted = '"sensitive"' in r.config and json.loads(r.config).get("sensitive") == "output"
            output = REDACTED_BLOB if redacted else r.value
            if first == 1 and len(attempts) == 1:  # nearly every step: its three events in one row
                events.emit_step_ok(seq, name, count, now - max(float(attempts[0].duration_s), 0.0), now, output)
            else:
                attempt_events(events, seq, name, count, first, attempts, now)
                events.emit(seq, "step.completed", now, name, count, output=output)
        else:
            attempt_events(events, seq, name, count, first, attempts, now)
            events.emit(seq, "step.failed", now, name, count,
                        error={"name": r.error_name, "message": r.error_message or ""})
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

    def apply_recorded(self, notes: list[Any]) -> None:
        """Steps the isolate committed itself (``local.py``): what follows a commit here
        (events, the log line, watchers), in the order the isolate committed them."""
        for note in notes:
            n = wire.Recorded(*note)
            r = wire.StepDone(*n.record)
            self._step_done_after(r, wire.attempts_of(r.attempts), (n.status, n.seq, n.at))

    async def step_retry(self, args: list[Any]) -> dict[str, Any]:
        """An attempt failed and a retry is due after a delay: record it, then the run unwinds."""
        r = wire.Retry(*args)
        workflow, instance_id, generation, name, count = r.workflow, r.instance, r.generation, r.name, r.count
        attempts, config, first, delay = wire.attempts_of(r.attempts), r.config, r.first, r.delay_s

        self._cancel_timer(workflow, instance_id, name, count)

        def op() -> tuple[float, int, float]:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            self._clear_in_flight(seq, name, count)
            at = now + float(delay)
            existing = self.db.execute("SELECT started FROM steps WHERE instance = ? AND name = ? AND "
                                       "count = ?", (seq, name, count)).fetchone()
            start = records.record_step_attempts(self.db, seq, name, count, first, attempts, now)
            records.upsert_step(self.db, seq, name, count, "step", "retrying", config=config,
                                started=existing[0] if existing else start, ended=None, wake_at=at)
            return at, seq, now

        at, seq, now = await self._committed(op)
        attempt_events(self.state.events, seq, name, count, first, attempts, now)
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

        def op() -> tuple[float, float, int]:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            end = float(until) if until is not None else now + float(seconds or 0)
            done = end <= now
            records.upsert_step(self.db, seq, name, count, "sleep", "ok" if done else "pending", started=now,
                                ended=now if done else None, wake_at=end)
            return now, end, seq

        now, end, seq = await self._committed(op)
        done = end <= now
        self.state.events.emit(seq, "sleep.started", now, name, count, until=views.iso(end))
        if done:
            self.state.events.emit(seq, "sleep.completed", now, name, count)
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
                records.upsert_step(self.db, seq, name, count, "waitForEvent", "failed", config=config,
                                    started=now, ended=now, error=("WorkflowTimeoutError", message))
                return {"error": {"name": "WorkflowTimeoutError", "message": message}, "seq": seq, "now": now}
            if isinstance(mock, dict):
                value: bytes | None = event_value(mock.get("payload"), now, event_type)
            else:
                value = take_event(self.db, seq, event_type, name, count)
            if value is not None:
                records.upsert_step(self.db, seq, name, count, "waitForEvent", "ok", value=value,
                                    config=config, started=now, ended=now)
                return {"value": value, "seq": seq, "now": now}
            at = now + float(timeout_s)
            records.upsert_step(self.db, seq, name, count, "waitForEvent", "pending", config=config,
                                started=now, ended=None, wake_at=at)
            return {"at": at, "seq": seq, "now": now}

        result = await self._committed(op)
        seq, now = result.pop("seq"), result.pop("now")
        events = self.state.events
        events.emit(seq, "wait.started", now, name, count, event_type=event_type)
        if "value" in result:
            events.emit(seq, "wait.completed", now, name, count, output=result["value"])
        elif "error" in result:
            events.emit(seq, "wait.timedOut", now, name, count, error=result["error"])
        if "value" in result:
            log.info("WORKFLOW %s/%s waitForEvent '%s' #%d got event '%s'", workflow, instance_id, name,
                     count, event_type)
        elif "at" in result:
            log.info("WORKFLOW %s/%s waitForEvent '%s' #%d waits for '%s' until %s", workflow,
                     instance_id, name, count, event_type, views.iso(result["at"]))
        self.state.notify(workflow, instance_id)
        return result


    # -- attempts in flight and platform-clock timeouts --------------------------------------------
    def _clear_in_flight(self, seq: int, name: str, count: int) -> None:
        if self._in_flight and (seq, name, count) in self._in_flight:
            self._in_flight.discard((seq, name, count))
            self.db.execute("DELETE FROM attempts_in_flight WHERE instance = ? AND name = ? AND count = ? "
                            "AND boot = ?", (seq, name, count, self.boot))

    def cut_off(self, seq: int) -> None:
        """The isolate running instance ``seq`` died (inside the caller's transaction): its
        attempts noted in flight were cut off. Their rows get ``boot`` 0, so ``describe``
        lists them as interrupted from now on, as it does after a platform crash.

        Why: the run that takes over may commit the step in its isolate (``local.py``),
        which knows nothing of the note; the row stayed as this platform run's, hidden as
        in flight, and showed up as interrupted only after the next restart."""
        if self.db.execute("UPDATE attempts_in_flight SET boot = 0 WHERE instance = ? AND boot = ?",
                           (seq, self.boot)).rowcount:
            self._in_flight = {k for k in self._in_flight if k[0] != seq}

    def _cancel_timer(self, workflow: str, instance_id: str, name: str, count: int) -> None:
        if self._timers:
            timer = self._timers.pop((workflow, instance_id, name, count), None)
            if timer is not None:
                timer.cancel()

    async def attempt_started(self, args: list[Any]) -> None:
        """An attempt is still running a moment after it started: keep a row, so that if the
        platform dies now, ``describe`` lists the attempt as cut off."""
        r = wire.AttemptNote(*args)

        def op() -> None:
            seq, _status = self._live(r.workflow, r.instance, r.generation)
            self.db.execute("INSERT INTO attempts_in_flight (instance, name, count, attempt, started, boot) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (seq, r.name, r.count, r.attempt, self.clock.now(),
                                                          self.boot))
            self._in_flight.add((seq, r.name, r.count))

        await self._committed(op)

    async def attempt_timer(self, args: list[Any]) -> dict[str, Any]:
        """Virtual clock: time this attempt out when the platform clock passes its deadline."""
        r = wire.AttemptNote(*args)
        self._live(r.workflow, r.instance, r.generation)
        key = (r.workflow, r.instance, r.name, r.count)
        self._cancel_timer(*key)

        def fire() -> None:
            self._timers.pop(key, None)
            if self.signal is not None:
                self.signal(r.workflow, r.instance, r.generation, "timeout", step=r.name, count=r.count,
                            attempt=r.attempt)

        self._timers[key] = self.clock.call_at(self.clock.now() + float(r.timeout_s), fire)
        return {}

    # -- rollbacks ------------------------------------------------------------------------------
    def _rollback_started(self, seq: int, name: str, count: int, first: int, attempts: list[wire.Attempt],
                          now: float) -> None:
        if first == 1:
            took = sum(max(float(a.duration_s), 0.0) for a in attempts)
            self.state.events.emit(seq, "rollback.started", now - took, name, count)

    async def rollback_done(self, args: list[Any]) -> dict[str, Any]:
        """A rollback finished for good (ok, or failed after its retries); committed before return."""
        r = wire.RollbackDone(*args)
        attempts = wire.attempts_of(r.attempts)

        def op() -> tuple[int, float]:
            seq, _status = self._live(r.workflow, r.instance, r.generation)
            now = self.clock.now()
            records.rollback_row(self.db, seq, r, r.state, attempts, now, None)
            return seq, now

        seq, now = await self._committed(op)
        self._rollback_started(seq, r.name, r.count, r.first, attempts, now)
        if r.state == "ok":
            self.state.events.emit(seq, "rollback.completed", now, r.name, r.count)
        else:
            self.state.events.emit(seq, "rollback.failed", now, r.name, r.count,
                                   error={"name": r.error_name, "message": r.error_message or ""})
        if r.state == "ok":
            log.info("WORKFLOW %s/%s rollback of step '%s' #%d ok", r.workflow, r.instance, r.name, r.count)
        else:
            log.warning("WORKFLOW %s/%s rollback of step '%s' #%d failed: %s: %s", r.workflow, r.instance,
                        r.name, r.count, r.error_name, r.error_message)
        self.state.notify(r.workflow, r.instance)
        return {}

    async def rollback_retry(self, args: list[Any]) -> dict[str, Any]:
        """A rollback attempt failed and the next is due after a delay."""
        r = wire.Retry(*args)
        attempts = wire.attempts_of(r.attempts)

        def op() -> tuple[float, int, float]:
            seq, _status = self._live(r.workflow, r.instance, r.generation)
            now = self.clock.now()
            at = now + float(r.delay_s)
            records.rollback_row(self.db, seq, r, "retrying", attempts, now, at)
            return at, seq, now

        at, seq, now = await self._committed(op)
        self._rollback_started(seq, r.name, r.count, r.first, attempts, now)
        last = attempts[-1]
        log.info("WORKFLOW %s/%s rollback of step '%s' #%d attempt %d failed (%s: %s); retry in %s", r.workflow,
                 r.instance, r.name, r.count, r.first + len(attempts) - 1, last.error_name, last.error_message,
                 rules.describe_s(float(r.delay_s)))
        self.state.notify(r.workflow, r.instance)
        return {"at": at}


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

