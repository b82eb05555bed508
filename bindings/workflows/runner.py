"""How an instance runs: one dispatch into the Worker's isolate, then its outcome recorded.

Why a module of its own: this is the only place that talks to the isolate about a whole run
(``host.invoke(script, "workflows.run", ...)``) and the only place that turns a run's
outcome into the instance's next status. A dispatch holds one running slot (given by
``scheduler.py``) and:

* resolves what is due in the history (ended sleeps, buffered events, event timeouts) and
  ships the whole history, so the isolate replays it without asking;
* waits for the outcome: ``complete``, ``errored`` or ``suspended``. ``suspended`` means
  every branch of ``run`` sleeps, waits for an event or a retry, or pauses: the instance
  becomes a ``waiting`` row with a ``wake_at`` and no coroutine;
* when the isolate dies, retries later with a growing delay and fails the instance after
  ``MAX_CRASHES`` crashes in a row.

Step records made *during* the run go through ``recorder.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edgelet.bindings.workflows import records, views
from edgelet.bindings.workflows.recorder import take_event, wait_timeout_message
from edgelet.bindings.workflows.scheduler import Scheduler
from edgelet.bindings.workflows.state import State
from edgelet.supervisor import IsolateError

log = logging.getLogger("edgelet.workflows")

#: how long one dispatch may hold the isolate; steps have their own (shorter) timeouts
DISPATCH_TIMEOUT = 24 * 3600.0
#: consecutive isolate crashes during a run before the instance is failed
MAX_CRASHES = 5
#: immediate re-dispatches (a wake already due at suspension) before going through the queue
MAX_REDISPATCH = 20


class Runner:
    """Runs instances in their Worker's isolate and records each run's outcome."""

    def __init__(self, state: State, scheduler: Scheduler) -> None:
        self.state = state
        self.host = state.host
        self.clock = state.clock
        self.db = state.db
        self.defs = state.defs
        self.mocks = state.mocks
        self.scheduler = scheduler
        #: a virtual clock (tests): step attempt timeouts are measured on it by the recorder
        self.virtual = bool(getattr(self.clock, "virtual", False))
        #: set by the engine: applies the notes of steps the isolate committed itself
        self.apply_recorded: Any = None
        #: set by the engine: marks an instance's attempts in flight as cut off (a crash)
        self.cut_off: Any = None

    async def run(self, workflow: str, instance_id: str, seq: int) -> None:
        """Hold one running slot: dispatch, record the outcome, dispatch again if already due."""
        d = self.defs[workflow]
        try:
            for _ in range(MAX_REDISPATCH):
                payload = self._prepare(workflow, seq)
                if payload is None:
                    return
                generation = payload["generation"]
                try:
                    result = await self.host.invoke(d.script, "workflows.run", payload,
                                                    timeout=DISPATCH_TIMEOUT)
                except IsolateError as exc:
                    self._crashed(workflow, instance_id, seq, generation, exc)
                    return
                except Exception as exc:  # the isolate side failed before running (a missing class)
                    message = getattr(exc, "message", None) or str(exc)
                    result = {"outcome": "errored",
                              "error": {"name": getattr(exc, "type_name", type(exc).__name__),
                                        "message": message}}
                self.state.crashes.pop((workflow, instance_id), None)
                if result.get("recorded") and self.apply_recorded is not None:
                    self.apply_recorded(result["recorded"])  # before the outcome's own events
                if result.get("outcome") == "complete":
                    committed = result.get("committed")
                    if committed is not None and self._completed_by_isolate(seq):
                        self._after_complete(workflow, instance_id, str(committed.get("old")), result)
                        return
                    if await self._complete(workflow, instance_id, seq, generation, result):
                        return
                if not self._finish(workflow, instance_id, seq, generation, result):
                    return
            self._requeue_now(workflow, seq)
        finally:
            self.state.running[workflow].discard(instance_id)
            self.state.notify(workflow, instance_id)  # a test waiting for the run to be over
            self.scheduler.kick(workflow)

    def _prepare(self, workflow: str, seq: int) -> dict[str, Any] | None:
        """Resolve what is due in the history, then build the dispatch payload (or None)."""
        row = self.db.execute("SELECT id, status, generation, params, created FROM instances "
                              "WHERE seq = ?", (seq,)).fetchone()
        if row is None or row[1] not in ("running", "waitingForPause"):
            return None
        _status = row[1]
        now = self.clock.now()
        pending = self.db.execute(
            "SELECT name, count, kind, wake_at, config FROM steps WHERE instance = ? "
            "AND state = 'pending' ORDER BY seq", (seq,)).fetchall()
        if pending:
            with self.state.tx():
                for name, count, kind, wake_at, config in pending:
                    events = self.state.events
                    if kind == "sleep":
                        if wake_at <= now:
                            self.db.execute("UPDATE steps SET state = 'ok', ended = ? WHERE instance = ? "
                                            "AND name = ? AND count = ?", (wake_at, seq, name, count))
                            events.emit(seq, "sleep.completed", wake_at, name, count)
                        continue
                    event_type = json.loads(config)["type"]
                    value = take_event(self.db, seq, event_type, name, count)
                    if value is not None:
                        self.db.execute("UPDATE steps SET state = 'ok', value = ?, ended = ?, wake_at = NULL "
                                        "WHERE instance = ? AND name = ? AND count = ?",
                                        (value, now, seq, name, count))
                        events.emit(seq, "wait.completed", now, name, count, output=value)
                    elif wake_at <= now:
                        message = wait_timeout_message(name, event_type, json.loads(config).get("timeout"))
                        self.db.execute(
                            "UPDATE steps SET state = 'failed', error_name = 'WorkflowTimeoutError', "
                            "error_message = ?, ended = ? WHERE instance = ? AND name = ? AND count = ?",
                            (message, wake_at, seq, name, count))
                        events.emit(seq, "wait.timedOut", wake_at, name, count,
                                    error={"name": "WorkflowTimeoutError", "message": message})
        mocks = self.mocks.get(workflow)
        return {**self.snapshot(workflow, seq, row, now), "pausing": _status == "waitingForPause",
                "virtual": self.virtual, "mocks": mocks.payload() if mocks is not None else None}

    def snapshot(self, workflow: str, seq: int, row: tuple[Any, ...], now: float) -> dict[str, Any]:
        """The dispatch payload of an instance as its rows stand (read only): ``row`` is
        ``(id, status, generation, params, created)``. A replay check ships this as well."""
        instance_id, _status, generation, params, created = row
        history = []
        for name, count, kind, state, value, ename, emsg, wake_at in self.db.execute(
                "SELECT name, count, kind, state, value, error_name, error_message, wake_at "
                "FROM steps WHERE instance = ? ORDER BY seq", (seq,)):
            attempts = 0
            if state == "retrying":
                attempts = self.db.execute("SELECT COUNT(*) FROM attempts WHERE instance = ? AND name = ? "
                                           "AND count = ?", (seq, name, count)).fetchone()[0]
            history.append([kind, name, count, state, value, ename, emsg, wake_at,
                            wake_at is not None and wake_at <= now, attempts])
        rollbacks = [[name, count, state, wake_at, wake_at is not None and wake_at <= now,
                      self.db.execute("SELECT COUNT(*) FROM rollback_attempts WHERE instance = ? AND name = ? "
                                      "AND count = ?", (seq, name, count)).fetchone()[0]]
                     for name, count, state, wake_at in self.db.execute(
                         "SELECT name, count, state, wake_at FROM rollbacks WHERE instance = ?", (seq,)).fetchall()]
        d = self.defs[workflow]
        return {"rollbacks": rollbacks,
                "workflow": workflow, "class": d.class_name, "id": instance_id, "generation": generation,
                "params": params, "timestamp": created, "history": history, "max_steps": d.max_steps}

    async def _complete(self, workflow: str, instance_id: str, seq: int, generation: int,
                        result: dict[str, Any]) -> bool:
        """The usual outcome, recorded through the loop turn's shared commit (under load,
        many instances finish per turn); False when the run is no longer current, for
        :meth:`_finish` to sort out."""
        def write() -> str | None:
            return records.complete(self.db, workflow, instance_id, generation, result.get("output"),
                                    self.clock.now())

        old = await self.state.committed(write)
        if old is None:
            return False
        self._after_complete(workflow, instance_id, old, result)
        return True

    def _completed_by_isolate(self, seq: int) -> bool:
        """The isolate says it committed the completion (``local.py``): the row agrees."""
        row = self.db.execute("SELECT status FROM instances WHERE seq = ?", (seq,)).fetchone()
        return row is not None and row[0] == "complete"

    def _after_complete(self, workflow: str, instance_id: str, old: str, result: dict[str, Any]) -> None:
        """What follows the completion's commit: mocks reached, events, watchers."""
        mocks = self.mocks.get(workflow)
        if mocks is not None and result.get("touched"):
            mocks.reached.update(result["touched"])
        self.state.status_changed(workflow, instance_id, old, "complete")

    def _finish(self, workflow: str, instance_id: str, seq: int, generation: int,
                result: dict[str, Any]) -> bool:
        """Record a run's outcome; True when the instance should be dispatched again at once."""
        row = self.db.execute("SELECT status, generation FROM instances WHERE seq = ?", (seq,)).fetchone()
        mocks = self.mocks.get(workflow)
        if mocks is not None and result.get("touched"):
            mocks.reached.update(result["touched"])
        if row is None:
            return False
        status, current = row
        if current != generation:
            # terminated or restarted meanwhile; a restart of a running instance keeps its slot
            return status == "running"
        if result.get("outcome") == "stale":  # given up although still current: run it again
            return status in ("running", "waitingForPause")
        now = self.clock.now()
        outcome = result.get("outcome")
        if outcome == "complete":
            with self.state.tx():
                self.state.set(seq, status="complete", output=result.get("output"), ended=now)
            self.state.status_changed(workflow, instance_id, status, "complete")
            return False
        if outcome == "errored":
            error = result.get("error") or {}
            with self.state.tx():
                self.state.set(seq, status="errored", ended=now, error_name=str(error.get("name", "Error")),
                               error_message=str(error.get("message", "")))
            self.state.status_changed(workflow, instance_id, status, "errored",
                                      f": {error.get('name')}: {error.get('message')}")
            return False
        # suspended: every branch sleeps, waits or pauses
        waits = result.get("waits") or []
        if status == "waitingForPause":
            with self.state.tx():
                self.state.set(seq, status="paused", wake_at=None, waiting_for=None)
            self.state.status_changed(workflow, instance_id, status, "paused")
            return False
        times = [w["at"] for w in waits if w.get("at") is not None]
        types = sorted({w["type"] for w in waits if w.get("kind") == "event"})
        wake = min(times) if times else None
        if any(w.get("kind") == "pause" for w in waits) or not waits:
            wake = now  # the pause was lifted while the run was unwinding
        if types:
            marks = ",".join("?" * len(types))
            if self.db.execute(f"SELECT 1 FROM events WHERE instance = ? AND consumed_by IS NULL AND "
                               f"type IN ({marks}) LIMIT 1", (seq, *types)).fetchone():
                wake = now
        if wake is not None and wake <= now:
            return True
        with self.state.tx():
            self.state.set(seq, status="waiting", wake_at=wake, waiting_for=json.dumps(types) if types else None)
        self.state.status_changed(workflow, instance_id, status, "waiting",
                                  f" until {views.iso(wake)}" + (f" or event {', '.join(types)}" if types else ""))
        self.scheduler.note_wake(wake)
        return False

    def _requeue_now(self, workflow: str, seq: int) -> None:
        """After many immediate re-dispatches, give the slot up and go through the queue."""
        now = self.clock.now()
        with self.state.tx():
            self.db.execute("UPDATE instances SET status = 'waiting', wake_at = ?, modified = ? "
                            "WHERE seq = ? AND status = 'running'", (now, now, seq))

    def _crashed(self, workflow: str, instance_id: str, seq: int, generation: int, exc: Exception) -> None:
        """The isolate died mid-run: retry the run later (the attempt in flight runs again)."""
        key = (workflow, instance_id)
        crashes = self.state.crashes.get(key, 0) + 1
        self.state.crashes[key] = crashes
        now = self.clock.now()
        delay = 2.0 ** (crashes - 1)
        with self.state.tx():
            # read under the write lock: the run may have committed its completion itself
            # (local.py) just before it went, and a finished instance must stay finished
            row = self.db.execute("SELECT status, generation FROM instances WHERE seq = ?",
                                  (seq,)).fetchone()
            if row is None or row[1] != generation or row[0] not in ("running", "waitingForPause"):
                return
            if self.cut_off is not None:
                self.cut_off(seq)  # its attempts in flight were interrupted
            new = "errored" if crashes >= MAX_CRASHES else \
                "paused" if row[0] == "waitingForPause" else "waiting"
            if new == "errored":
                self.state.set(seq, status="errored", ended=now, error_name="IsolateError",
                               error_message=f"{exc} ({crashes} times in a row)")
            else:
                # a new generation: the run given up on here may still be alive (a reload's
                # grace period, a dispatch timeout) and commits its own steps (local.py)
                self.state.set(seq, status=new, wake_at=None if new == "paused" else now + delay,
                               generation=generation + 1)
        if new == "errored":
            self.state.crashes.pop(key, None)
            self.state.status_changed(workflow, instance_id, row[0], "errored", f": {exc}")
            return
        log.warning("WORKFLOW %s/%s: %s; running it again in %g s", workflow, instance_id, exc, delay)
        self.state.status_changed(workflow, instance_id, row[0], new)
        if new == "waiting":
            self.scheduler.note_wake(now + delay)

    def signal(self, workflow: str, instance_id: str, generation: int, signal: str, **extra: Any) -> None:
        """Tell the isolate running this instance to pause, unpause, give the run up, or time
        an attempt out (``extra``: which one)."""
        if instance_id not in self.state.running.get(workflow, ()):
            return
        script = self.defs[workflow].script

        async def send() -> None:
            try:
                await self.host.invoke(script, "workflows.signal",
                                       {"workflow": workflow, "id": instance_id,
                                        "generation": generation, "signal": signal, **extra}, timeout=10)
            except Exception as exc:  # the run learns it at its next step anyway
                log.debug("signal %s to %s/%s failed: %s", signal, workflow, instance_id, exc)

        self.host.spawn(send(), name=f"workflow signal {workflow}/{instance_id}")
