"""The host-side scheduler and the durable record of every instance.

How an instance moves (schema.py has the rows):

* ``create`` inserts a ``queued`` row. A *drain* fills the workflow's free running slots:
  woken instances first (``waiting`` with ``wake_at`` passed, earliest first), then
  ``queued`` ones in creation order; each becomes ``running`` and gets a dispatch task.
* A dispatch resolves what is due in its history (ended sleeps, buffered events, event
  timeouts), ships the whole history with ``host.invoke(script, "workflows.run", ...)``
  and waits for the run's outcome: ``complete``, ``errored`` or ``suspended``.
* While it runs, the isolate records every step through the internal binding (see
  ``isolate.py``); each record is committed before the step's caller sees the value.
* ``suspended`` means every branch of ``run`` sleeps, waits for an event or a retry, or
  pauses: the instance becomes a ``waiting`` row with a ``wake_at`` and no coroutine.
* ONE clock timer is armed for the earliest future ``wake_at``; when it fires it spawns
  drains and returns. Nothing loops forever, so virtual time settles.

On start every ``running`` instance (cut off by a crash or a stop) is woken at once and
replays; ``queued`` and ``waiting`` rows need nothing: the drain and the timer find them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from edgelet.bindings.workflows import codec, rules, schema, store
from edgelet.isolates import IsolateError

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.clock import TimerHandle
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.workflows")

#: how long one dispatch may hold the isolate; steps have their own (shorter) timeouts
DISPATCH_TIMEOUT = 24 * 3600.0
#: consecutive isolate crashes during a run before the instance is failed
MAX_CRASHES = 5
#: how many rows one drain round reads, so a long queue never loads into memory
DRAIN_BATCH = 256
#: instances of one workflow executing at once, whatever its ``concurrency``: every running
#: run is a coroutine in one Python isolate, so starting 50,000 at once costs gigabytes for
#: nothing; the rest stay queued (or due) rows and start as runs suspend or finish.
#: ``EDGELET_WORKFLOWS_MAX_ACTIVE`` changes it.
MAX_ACTIVE = int(os.environ.get("EDGELET_WORKFLOWS_MAX_ACTIVE", "4096"))
#: immediate re-dispatches (a wake already due at suspension) before going through the queue
MAX_REDISPATCH = 20


class StaleRunError(Exception):
    """A run tried to record a step for an instance that was terminated or restarted."""


def _err(cls: type[Exception], message: str, status: int) -> Exception:
    """A builtin exception (so the Worker sees the same type) with an HTTP status for the API."""
    exc = cls(message)
    exc.api_status = status  # type: ignore[attr-defined]
    return exc


@dataclass
class WorkflowDef:
    """One workflow as configured: where its class lives and how many may run at once."""

    name: str
    class_name: str
    script: str
    concurrency: int = 50_000
    schedules: list[str] = field(default_factory=list)


class Engine:
    """Owns the ``workflows`` database and every instance's life; one per host."""

    def __init__(self, host: HostServices, defs: dict[str, WorkflowDef],
                 mocks: dict[str, Any] | None = None) -> None:
        self.host = host
        self.clock = host.clock
        self.defs = defs
        self.mocks = mocks if mocks is not None else {}
        self.db = host.database("workflows")
        schema.install(self.db)
        self._running: dict[str, set[str]] = {name: set() for name in defs}
        self._drain_pending: set[str] = set()
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._cron_timers: list[TimerHandle] = []
        self._watchers: dict[tuple[str, str], asyncio.Event] = {}
        self._crashes: dict[tuple[str, str], int] = {}
        self._step_seq = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM steps").fetchone()[0])
        self._stopped = False
        self._batch: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Register the workflows, resume what a crash or stop cut off, arm timers."""
        now = self.clock.now()
        with self._tx():
            for d in self.defs.values():
                self.db.execute(
                    "INSERT INTO workflows (name, class_name, script_name, created, modified) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET class_name = excluded.class_name, "
                    "script_name = excluded.script_name, modified = excluded.modified "
                    "WHERE class_name != excluded.class_name OR script_name != excluded.script_name",
                    (d.name, d.class_name, d.script, now, now))
            paused = resumed = 0
            for name in self.defs:  # (workflow, status) is indexed: cheap with millions of rows
                paused += self.db.execute(
                    "UPDATE instances SET status = 'paused', wake_at = NULL, modified = ? "
                    "WHERE workflow = ? AND status = 'waitingForPause'", (now, name)).rowcount
                resumed += self.db.execute(
                    "UPDATE instances SET status = 'waiting', wake_at = ?, modified = ? "
                    "WHERE workflow = ? AND status = 'running'", (now, now, name)).rowcount
        if resumed or paused:
            log.info("WORKFLOWS resuming %d interrupted instance(s)%s", resumed,
                     f"; {paused} waiting for pause are now paused" if paused else "")
        for name in self.defs:
            self._kick(name)
        self._arm()
        for d in self.defs.values():
            for expr in d.schedules:
                self._arm_cron(d.name, expr)

    def stop(self) -> None:
        """Drop timers. Runs in flight stay ``running`` in the database and replay on start."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in self._cron_timers:
            timer.cancel()
        self._cron_timers.clear()

    # -- database helpers ---------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _def(self, workflow: str) -> WorkflowDef:
        d = self.defs.get(workflow)
        if d is None:
            known = ", ".join(sorted(self.defs)) or "none"
            raise _err(LookupError, f"unknown workflow '{workflow}'; workflows: {known}", 404)
        return d

    def _row(self, workflow: str, instance_id: str) -> dict[str, Any]:
        self._def(workflow)
        row = store.instance_row(self.db, workflow, instance_id)
        if row is None:
            raise _err(LookupError, f"workflow '{workflow}' has no instance '{instance_id}'; "
                                    f"create it first or check the id", 404)
        return row

    def _set(self, seq: int, **values: Any) -> None:
        values.setdefault("modified", self.clock.now())
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE instances SET {cols} WHERE seq = ?", (*values.values(), seq))

    def _status_changed(self, workflow: str, instance_id: str, old: str, new: str,
                        detail: str = "") -> None:
        if old != new:
            log.info("WORKFLOW %s/%s %s -> %s%s", workflow, instance_id, old, new, detail)
        self._notify(workflow, instance_id)

    # -- watchers (test handles wait on these instead of polling) -------------------------------
    def _notify(self, workflow: str, instance_id: str) -> None:
        event = self._watchers.pop((workflow, instance_id), None)
        if event is not None:
            event.set()

    async def wait_change(self, workflow: str, instance_id: str, timeout: float) -> None:
        """Return after the instance's status or history changes next (or the timeout)."""
        key = (workflow, instance_id)
        event = self._watchers.get(key)
        if event is None:
            event = self._watchers[key] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # -- management (binding, control API, handles) --------------------------------------------
    def create(self, workflow: str, instance_id: str | None, params: bytes | None,
               trigger: str = "api") -> dict[str, Any]:
        return self.create_batch(workflow, [(instance_id, params)], trigger)[0]

    def create_batch(self, workflow: str, items: list[tuple[str | None, bytes | None]],
                     trigger: str = "api") -> list[dict[str, Any]]:
        """Create up to 100 instances atomically: all of them or, on any error, none."""
        self._def(workflow)
        if not items:
            raise _err(ValueError, "createBatch needs at least one instance", 400)
        if len(items) > rules.MAX_BATCH:
            raise _err(ValueError, f"createBatch takes at most {rules.MAX_BATCH} instances, got "
                                   f"{len(items)}; split the batch", 400)
        ids: list[str] = []
        for instance_id, params in items:
            ids.append(rules.check_instance_id(instance_id, workflow=workflow)
                       if instance_id is not None else str(uuid.uuid4()))
            if params is not None and not isinstance(params, (bytes, bytearray)):
                raise _err(TypeError, "params must arrive encoded (internal error)", 500)
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise _err(ValueError, f"instance id '{dup}' appears twice in the batch", 409)
        now = self.clock.now()
        with self._tx():
            for instance_id in ids:
                row = self.db.execute("SELECT status FROM instances WHERE workflow = ? AND id = ?",
                                      (workflow, instance_id)).fetchone()
                if row is not None:
                    raise _err(ValueError, f"instance id '{instance_id}' is already in use in workflow "
                                           f"'{workflow}' (status {row[0]}); choose another id", 409)
            self.db.executemany(
                "INSERT INTO instances (workflow, id, status, params, trigger, created, modified) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                [(workflow, i, p, trigger, now, now) for i, (_, p) in zip(ids, items)])
        if log.isEnabledFor(logging.INFO):
            for instance_id in ids:
                log.info("WORKFLOW %s/%s queued (%s)", workflow, instance_id, trigger)
        for instance_id in ids:
            self._notify(workflow, instance_id)
        self._kick(workflow)
        return [{"id": i, "status": "queued"} for i in ids]

    def exists(self, workflow: str, instance_id: str) -> str:
        self._row(workflow, instance_id)
        return instance_id

    def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """``{status, error, output}`` with ``output`` still encoded (bytes or None)."""
        row = self._row(workflow, instance_id)
        return {"status": row["status"], "error": store.error_of(row), "output": row["output"]}

    def describe(self, workflow: str, instance_id: str) -> dict[str, Any]:
        self._def(workflow)
        return store.describe(self.db, workflow, instance_id)

    def pause(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise _err(RuntimeError, f"cannot pause instance '{instance_id}' of workflow '{workflow}': "
                                     f"it is {old}; only queued, running or waiting instances can be paused", 409)
        if old in ("paused", "waitingForPause"):
            return old
        if old == "running":
            with self._tx():
                self._set(row["seq"], status="waitingForPause")
            self._signal(workflow, instance_id, row["generation"], "pause")
            self._status_changed(workflow, instance_id, old, "waitingForPause")
            return "waitingForPause"
        with self._tx():
            self._set(row["seq"], status="paused", wake_at=None, waiting_for=None)
        self._status_changed(workflow, instance_id, old, "paused")
        return "paused"

    def resume(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise _err(RuntimeError, f"cannot resume instance '{instance_id}' of workflow '{workflow}': "
                                     f"it is {old}; use restart() to run it again", 409)
        if old == "waitingForPause":
            with self._tx():
                self._set(row["seq"], status="running")
            self._signal(workflow, instance_id, row["generation"], "unpause")
            self._status_changed(workflow, instance_id, old, "running")
            return "running"
        if old != "paused":
            return old  # queued, running, waiting: nothing to resume (Cloudflare ignores it too)
        now = self.clock.now()
        with self._tx():
            if row["started"] is None:
                self._set(row["seq"], status="queued")
                new = "queued"
            else:  # it ran before: it goes ahead of new instances, like any woken one
                self._set(row["seq"], status="waiting", wake_at=now)
                new = "waiting"
        self._status_changed(workflow, instance_id, old, new)
        self._kick(workflow)
        return new

    def terminate(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise _err(RuntimeError, f"cannot terminate instance '{instance_id}' of workflow '{workflow}': "
                                     f"it is already {old}", 409)
        with self._tx():
            self._set(row["seq"], status="terminated", ended=self.clock.now(), wake_at=None,
                      waiting_for=None, generation=row["generation"] + 1)
        if instance_id in self._running.get(workflow, ()):
            self._signal(workflow, instance_id, row["generation"], "cancel")
        self._status_changed(workflow, instance_id, old, "terminated")
        return "terminated"

    def restart(self, workflow: str, instance_id: str, from_step: str | None = None) -> str:
        """Erase the history (or the part from ``from_step`` on) and run from the top.

        Events taken by erased waits go back to the buffer, so the new run can take them.
        """
        row = self._row(workflow, instance_id)
        seq, old = row["seq"], row["status"]
        with self._tx():
            if from_step is not None:
                first = self.db.execute("SELECT seq FROM steps WHERE instance = ? AND name = ? "
                                        "ORDER BY seq LIMIT 1", (seq, from_step)).fetchone()
                if first is None:
                    names = [r[0] for r in self.db.execute(
                        "SELECT DISTINCT name FROM steps WHERE instance = ? ORDER BY seq", (seq,))]
                    raise _err(ValueError, f"cannot restart instance '{instance_id}' from step "
                                           f"'{from_step}': its history has no such step (steps: "
                                           f"{', '.join(repr(n) for n in names) or 'none'})", 400)
                cut = first[0]
            else:
                cut = -1
            erased = self.db.execute("SELECT name, count FROM steps WHERE instance = ? AND seq >= ?",
                                     (seq, cut)).fetchall()
            for name, count in erased:
                self.db.execute("UPDATE events SET consumed_by = NULL WHERE instance = ? AND consumed_by = ?",
                                (seq, f"{name}#{count}"))
                self.db.execute("DELETE FROM attempts WHERE instance = ? AND name = ? AND count = ?",
                                (seq, name, count))
            self.db.execute("DELETE FROM steps WHERE instance = ? AND seq >= ?", (seq, cut))
            running = instance_id in self._running.get(workflow, ())
            new = "running" if running else "queued"
            self._set(seq, status=new, generation=row["generation"] + 1, output=None, error_name=None,
                      error_message=None, ended=None, wake_at=None, waiting_for=None)
        if running:
            self._signal(workflow, instance_id, row["generation"], "cancel")
        self._crashes.pop((workflow, instance_id), None)
        log.info("WORKFLOW %s/%s restarted%s", workflow, instance_id,
                 f" from step '{from_step}'" if from_step else "")
        self._status_changed(workflow, instance_id, old, new)
        self._kick(workflow)
        return new

    def send_event(self, workflow: str, instance_id: str, event_type: str, payload: bytes | None) -> None:
        """Buffer an event; wake the instance if it waits for this type."""
        rules.check_event_type(event_type)
        row = self._row(workflow, instance_id)
        if row["status"] in schema.FINISHED:
            raise _err(RuntimeError, f"cannot send event '{event_type}' to instance '{instance_id}' of "
                                     f"workflow '{workflow}': it is {row['status']}", 409)
        now = self.clock.now()
        waiting_for = json.loads(row["waiting_for"]) if row["waiting_for"] else []
        wake = row["status"] == "waiting" and event_type in waiting_for
        with self._tx():
            self.db.execute("INSERT INTO events (instance, type, payload, timestamp) VALUES (?, ?, ?, ?)",
                            (row["seq"], event_type, payload, now))
            if wake:
                self._set(row["seq"], wake_at=now)
        log.info("WORKFLOW %s/%s event '%s' received%s", workflow, instance_id, event_type,
                 "" if wake else " (buffered)")
        self._notify(workflow, instance_id)
        if wake:
            self._kick(workflow)

    def list(self, workflow: str, status: str | None = None, page: int = 1,
             per_page: int = 50) -> tuple[list[dict[str, Any]], dict[str, int]]:
        self._def(workflow)
        return store.list_instances(self.db, workflow, status, page, per_page)

    def summary(self, workflow: str) -> dict[str, Any]:
        self._def(workflow)
        return store.workflow_summary(self.db, workflow)

    # -- scheduling -----------------------------------------------------------------------------
    def _kick(self, workflow: str) -> None:
        """Spawn a drain for ``workflow`` unless one is pending or no slot is free."""
        d = self.defs.get(workflow)
        if d is None or self._stopped or workflow in self._drain_pending:
            return
        if len(self._running[workflow]) >= min(d.concurrency, MAX_ACTIVE):
            return
        self._drain_pending.add(workflow)
        self.host.spawn(self._drain_task(workflow), name=f"workflows drain {workflow}")

    async def _drain_task(self, workflow: str) -> None:
        self._drain(workflow)

    def _drain(self, workflow: str) -> None:
        """Fill free slots: woken instances first (earliest wake), then queued (oldest)."""
        self._drain_pending.discard(workflow)
        limit = min(self.defs[workflow].concurrency, MAX_ACTIVE)
        running = self._running[workflow]
        now = self.clock.now()
        while not self._stopped and len(running) < limit:
            want = min(limit - len(running), DRAIN_BATCH)
            now = self.clock.now()
            rows = self.db.execute(
                "SELECT seq, id, status FROM instances WHERE workflow = ? AND status = 'waiting' "
                "AND wake_at <= ? ORDER BY wake_at LIMIT ?", (workflow, now, want)).fetchall()
            if len(rows) < want:
                rows += self.db.execute(
                    "SELECT seq, id, status FROM instances WHERE workflow = ? AND status = 'queued' "
                    "ORDER BY seq LIMIT ?", (workflow, want - len(rows))).fetchall()
            rows = [r for r in rows if r[1] not in running]
            if not rows:
                break
            with self._tx():
                self.db.executemany(
                    "UPDATE instances SET status = 'running', started = COALESCE(started, ?), "
                    "modified = ?, wake_at = NULL, waiting_for = NULL WHERE seq = ?",
                    [(now, now, r[0]) for r in rows])
            for seq, instance_id, old in rows:
                running.add(instance_id)
                self._status_changed(workflow, instance_id, old, "running")
                self.host.spawn(self._run(workflow, instance_id, seq),
                                name=f"workflow {workflow}/{instance_id}")
        # the same `now` as the due check above: whatever was not due then gets the timer
        # (timers may fire a little early, so a fresh reading could skip an instance)
        self._arm(now)

    def _arm(self, now: float | None = None) -> None:
        """Keep ONE clock timer, at the earliest ``wake_at`` after ``now`` of any workflow."""
        if self._stopped:
            return
        if now is None:
            now = self.clock.now()
        best: float | None = None
        for name in self.defs:
            t = self.db.execute("SELECT MIN(wake_at) FROM instances WHERE workflow = ? AND "
                                "status = 'waiting' AND wake_at > ?", (name, now)).fetchone()[0]
            if t is not None and (best is None or t < best):
                best = t
        if best == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = best
        if best is not None:
            log.debug("workflows: next wake-up at %s", store.iso(best))
            self._timer = self.clock.call_at(best, self._on_timer)

    def _note_wake(self, when: float | None) -> None:
        if when is None or self._stopped:
            return
        if self._timer is None or self._timer_at is None or when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            log.debug("workflows: next wake-up at %s", store.iso(when))
            self._timer_at = when
            self._timer = self.clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for name in self.defs:
            self._kick(name)
        self._arm()

    def _arm_cron(self, workflow: str, expr: str) -> None:
        from edgelet.cron import next_fire
        when = next_fire(expr, self.clock.now())

        def fire() -> None:
            if self._stopped:
                return
            self.host.spawn(self._cron_create(workflow, expr, when), name=f"workflow cron {workflow}")
            self._arm_cron(workflow, expr)

        self._cron_timers.append(self.clock.call_at(when, fire))

    async def _cron_create(self, workflow: str, expr: str, when: float) -> None:
        params = codec.encode({"cron": expr, "scheduledTime": int(when * 1000)})
        try:
            created = self.create(workflow, None, params, trigger="cron")
            log.info("WORKFLOW %s cron %r created instance %s", workflow, expr, created["id"])
        except Exception as exc:  # pragma: no cover - a full disk, say
            log.error("WORKFLOW %s cron %r could not create an instance: %s", workflow, expr, exc)

    # -- dispatch -------------------------------------------------------------------------------
    async def _run(self, workflow: str, instance_id: str, seq: int) -> None:
        """Hold one running slot: dispatch, record the outcome, dispatch again if already due."""
        d = self.defs[workflow]
        try:
            for _ in range(MAX_REDISPATCH):
                payload = self._prepare(workflow, seq)
                if payload is None:
                    return
                generation = payload["generation"]
                try:
                    result = await self.host.invoke(d.script, "workflows.run", payload,  # type: ignore[call-arg]
                                                    timeout=DISPATCH_TIMEOUT)
                except IsolateError as exc:
                    self._crashed(workflow, instance_id, seq, generation, exc)
                    return
                except Exception as exc:  # the isolate side failed before running (a missing class)
                    message = getattr(exc, "message", None) or str(exc)
                    result = {"outcome": "errored",
                              "error": {"name": getattr(exc, "type_name", type(exc).__name__),
                                        "message": message}}
                self._crashes.pop((workflow, instance_id), None)
                if not self._finish(workflow, instance_id, seq, generation, result):
                    return
            self._requeue_now(workflow, seq)
        finally:
            self._running[workflow].discard(instance_id)
            self._kick(workflow)

    def _prepare(self, workflow: str, seq: int) -> dict[str, Any] | None:
        """Resolve what is due in the history, then build the dispatch payload (or None)."""
        row = self.db.execute("SELECT id, status, generation, params, created FROM instances "
                              "WHERE seq = ?", (seq,)).fetchone()
        if row is None or row[1] not in ("running", "waitingForPause"):
            return None
        instance_id, _status, generation, params, created = row
        now = self.clock.now()
        pending = self.db.execute(
            "SELECT name, count, kind, wake_at, config FROM steps WHERE instance = ? "
            "AND state = 'pending' ORDER BY seq", (seq,)).fetchall()
        if pending:
            with self._tx():
                for name, count, kind, wake_at, config in pending:
                    if kind == "sleep":
                        if wake_at <= now:
                            self.db.execute("UPDATE steps SET state = 'ok', ended = ? WHERE instance = ? "
                                            "AND name = ? AND count = ?", (wake_at, seq, name, count))
                        continue
                    event_type = json.loads(config)["type"]
                    value = self._take_event(seq, event_type, name, count)
                    if value is not None:
                        self.db.execute("UPDATE steps SET state = 'ok', value = ?, ended = ?, wake_at = NULL "
                                        "WHERE instance = ? AND name = ? AND count = ?",
                                        (value, now, seq, name, count))
                    elif wake_at <= now:
                        self.db.execute(
                            "UPDATE steps SET state = 'failed', error_name = 'WorkflowTimeoutError', "
                            "error_message = ?, ended = ? WHERE instance = ? AND name = ? AND count = ?",
                            (_wait_timeout_message(name, event_type, json.loads(config).get("timeout")),
                             wake_at, seq, name, count))
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
        mocks = self.mocks.get(workflow)
        d = self.defs[workflow]
        return {"workflow": workflow, "class": d.class_name, "id": instance_id, "generation": generation,
                "params": params, "timestamp": created, "history": history,
                "pausing": _status == "waitingForPause",
                "mocks": mocks.payload() if mocks is not None else None}

    def _take_event(self, seq: int, event_type: str, name: str, count: int) -> bytes | None:
        """Consume the oldest buffered event of a type (inside a transaction); its stored form."""
        ev = self.db.execute("SELECT seq, payload, timestamp FROM events WHERE instance = ? AND type = ? "
                             "AND consumed_by IS NULL ORDER BY seq LIMIT 1", (seq, event_type)).fetchone()
        if ev is None:
            return None
        self.db.execute("UPDATE events SET consumed_by = ? WHERE seq = ?", (f"{name}#{count}", ev[0]))
        return _event_value(ev[1], ev[2], event_type)

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
            with self._tx():
                self._set(seq, status="complete", output=result.get("output"), ended=now)
            self._status_changed(workflow, instance_id, status, "complete")
            return False
        if outcome == "errored":
            error = result.get("error") or {}
            with self._tx():
                self._set(seq, status="errored", ended=now, error_name=str(error.get("name", "Error")),
                          error_message=str(error.get("message", "")))
            self._status_changed(workflow, instance_id, status, "errored",
                                 f": {error.get('name')}: {error.get('message')}")
            return False
        # suspended: every branch sleeps, waits or pauses
        waits = result.get("waits") or []
        if status == "waitingForPause":
            with self._tx():
                self._set(seq, status="paused", wake_at=None, waiting_for=None)
            self._status_changed(workflow, instance_id, status, "paused")
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
        with self._tx():
            self._set(seq, status="waiting", wake_at=wake, waiting_for=json.dumps(types) if types else None)
        self._status_changed(workflow, instance_id, status, "waiting",
                             f" until {store.iso(wake)}" + (f" or event {', '.join(types)}" if types else ""))
        self._note_wake(wake)
        return False

    def _requeue_now(self, workflow: str, seq: int) -> None:
        """After many immediate re-dispatches, give the slot up and go through the queue."""
        now = self.clock.now()
        with self._tx():
            self.db.execute("UPDATE instances SET status = 'waiting', wake_at = ?, modified = ? "
                            "WHERE seq = ? AND status = 'running'", (now, now, seq))

    def _crashed(self, workflow: str, instance_id: str, seq: int, generation: int, exc: Exception) -> None:
        """The isolate died mid-run: retry the run later (the attempt in flight runs again)."""
        key = (workflow, instance_id)
        crashes = self._crashes.get(key, 0) + 1
        self._crashes[key] = crashes
        row = self.db.execute("SELECT status, generation FROM instances WHERE seq = ?", (seq,)).fetchone()
        if row is None or row[1] != generation or row[0] not in ("running", "waitingForPause"):
            return
        now = self.clock.now()
        if crashes >= MAX_CRASHES:
            self._crashes.pop(key, None)
            with self._tx():
                self._set(seq, status="errored", ended=now, error_name="IsolateError",
                          error_message=f"{exc} ({crashes} times in a row)")
            self._status_changed(workflow, instance_id, row[0], "errored", f": {exc}")
            return
        delay = 2.0 ** (crashes - 1)
        new = "paused" if row[0] == "waitingForPause" else "waiting"
        with self._tx():
            self._set(seq, status=new, wake_at=None if new == "paused" else now + delay)
        log.warning("WORKFLOW %s/%s: %s; running it again in %g s", workflow, instance_id, exc, delay)
        self._status_changed(workflow, instance_id, row[0], new)
        if new == "waiting":
            self._note_wake(now + delay)

    def _signal(self, workflow: str, instance_id: str, generation: int, signal: str) -> None:
        """Tell the isolate running this instance to pause, unpause or give the run up."""
        if instance_id not in self._running.get(workflow, ()):
            return
        script = self.defs[workflow].script

        async def send() -> None:
            try:
                await self.host.invoke(script, "workflows.signal",  # type: ignore[call-arg]
                                       {"workflow": workflow, "id": instance_id,
                                        "generation": generation, "signal": signal}, timeout=10)
            except Exception as exc:  # the run learns it at its next step anyway
                log.debug("signal %s to %s/%s failed: %s", signal, workflow, instance_id, exc)

        self.host.spawn(send(), name=f"workflow signal {workflow}/{instance_id}")

    # -- calls from the running isolate ------------------------------------------------------
    def _live(self, workflow: str, instance_id: str, generation: int) -> tuple[int, str]:
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
        self.db.execute(
            "INSERT INTO steps (instance, name, count, seq, kind, state, value, error_name, error_message, "
            "config, started, ended, wake_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(instance, name, count) DO UPDATE SET state = excluded.state, value = excluded.value, "
            "error_name = excluded.error_name, error_message = excluded.error_message, "
            "config = excluded.config, ended = excluded.ended, wake_at = excluded.wake_at",
            (seq, name, count, self._next_step_seq(), kind, state, value, error[0], error[1], config,
             started, ended, wake_at))

    def _record_attempts(self, seq: int, name: str, count: int, first: int,
                         attempts: list[list[Any]], now: float) -> float:
        """Store attempts timed backwards from ``now`` (durations are measured in the isolate)."""
        end = now
        rows = []
        for i in range(len(attempts) - 1, -1, -1):
            duration, success, ename, emsg = attempts[i]
            start = end - max(float(duration), 0.0)
            rows.append((seq, name, count, first + i, start, end, 1 if success else 0, ename, emsg))
            end = start
        self.db.executemany(
            "INSERT OR REPLACE INTO attempts (instance, name, count, attempt, started, ended, success, "
            "error_name, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return end

    async def _committed(self, op: Callable[[], Any]) -> Any:
        """Run ``op`` (SQL writes) in a transaction shared by every record of this loop turn.

        Why: one commit per step made the commit the cost of a step. Records that arrive
        together (many instances running at once) now share one; each caller still gets its
        answer only after that commit, so nothing is acknowledged before it is durable.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((op, future))
        if len(self._batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                self.db.execute("SAVEPOINT record")
                try:
                    outcomes.append((future, op(), None))
                    self.db.execute("RELEASE record")
                except Exception as exc:  # this record only (a stale run, bad input)
                    self.db.execute("ROLLBACK TO record")
                    self.db.execute("RELEASE record")
                    outcomes.append((future, None, exc))
            self.db.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing was recorded
            try:
                self.db.execute("ROLLBACK")
            except Exception:
                pass
            outcomes = [(future, None, exc) for _, future in batch]
        for future, value, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def step_done(self, args: list[Any]) -> dict[str, Any]:
        """A step finished for good (ok, or failed with no retry left); committed before return."""
        (workflow, instance_id, generation, name, count, state, value, ename, emsg, attempts,
         config, first) = args

        def op() -> str:
            seq, status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            existing = self.db.execute("SELECT started FROM steps WHERE instance = ? AND name = ? AND "
                                       "count = ?", (seq, name, count)).fetchone()
            start = self._record_attempts(seq, name, count, first, attempts, now)
            self._upsert_step(seq, name, count, "step", state, value=value, error=(ename, emsg),
                              config=config, started=existing[0] if existing else start, ended=now)
            return status

        status = await self._committed(op)
        if log.isEnabledFor(logging.INFO):
            took = sum(float(a[0]) for a in attempts) * 1000
            tries = f" after {first + len(attempts) - 1} attempts" if first + len(attempts) > 2 else ""
            if state == "ok":
                log.info("WORKFLOW %s/%s step '%s' #%d ok%s (%.1f ms)", workflow, instance_id, name,
                         count, tries, took)
            else:
                log.info("WORKFLOW %s/%s step '%s' #%d failed%s: %s: %s", workflow, instance_id, name,
                         count, tries, ename, emsg)
        self._notify(workflow, instance_id)
        return {"pause": status == "waitingForPause"}

    async def step_retry(self, args: list[Any]) -> dict[str, Any]:
        """An attempt failed and a retry is due after a delay: record it, then the run unwinds."""
        workflow, instance_id, generation, name, count, attempts, config, first, delay = args

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
                 instance_id, name, count, first + len(attempts) - 1, last[2], last[3],
                 rules.describe_s(float(delay)))
        self._notify(workflow, instance_id)
        return {"at": at}

    async def sleep(self, args: list[Any]) -> dict[str, Any]:
        """A new sleep: record its end; done at once when that is not in the future."""
        workflow, instance_id, generation, name, count, seconds, until = args

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
                 "over at once" if done else f"until {store.iso(end)} ({rules.describe_s(end - now)})")
        self._notify(workflow, instance_id)
        return {"done": True} if done else {"at": end}

    async def wait_event(self, args: list[Any]) -> dict[str, Any]:
        """A new waitForEvent: take a buffered (or mocked) event, or record the wait."""
        workflow, instance_id, generation, name, count, event_type, timeout_s, mock = args
        config = json.dumps({"type": event_type, "timeout": timeout_s})

        def op() -> dict[str, Any]:
            seq, _status = self._live(workflow, instance_id, generation)
            now = self.clock.now()
            if mock == "timeout":
                message = _wait_timeout_message(name, event_type, timeout_s)
                self._upsert_step(seq, name, count, "waitForEvent", "failed", config=config, started=now,
                                  ended=now, error=("WorkflowTimeoutError", message))
                return {"error": {"name": "WorkflowTimeoutError", "message": message}}
            if isinstance(mock, dict):
                value: bytes | None = _event_value(mock.get("payload"), now, event_type)
            else:
                value = self._take_event(seq, event_type, name, count)
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
                     instance_id, name, count, event_type, store.iso(result["at"]))
        self._notify(workflow, instance_id)
        return result


def _event_value(payload: bytes | None, timestamp: float, event_type: str) -> bytes:
    """What ``wait_for_event`` returns: ``{payload, timestamp, type}``, encoded."""
    import datetime as _dt
    return codec.encode({"payload": codec.decode(payload),
                         "timestamp": _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc),
                         "type": event_type}, limit=2 * codec.MAX_VALUE_BYTES)


def _wait_timeout_message(name: str, event_type: str, timeout_s: Any) -> str:
    took = rules.describe_s(float(timeout_s)) if timeout_s is not None else "its timeout"
    return (f"waitForEvent '{name}' timed out after {took} without an event of type '{event_type}'")

