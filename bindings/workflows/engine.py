"""The Workflows engine: one per host, the facade every other module talks to.

Why it is split: the engine has four jobs, each in its own module, wired together here.

* ``engine.py`` (this file): the management API used by the binding, the control API, the
  CLI and test handles (create, status, pause, resume, terminate, restart, send_event,
  list...), plus start and stop;
* ``scheduler.py``: which instance runs when (running slots, the one wake-up timer, cron);
* ``runner.py``: one dispatch of an instance into its Worker's isolate and its outcome;
* ``recorder.py``: the step records a run makes while it runs (group-committed);
* ``state.py``: the database and in-memory bookkeeping they all share.

How an instance moves (``schema.py`` has the rows, and is the whole durable state):
``create`` inserts a ``queued`` row; the scheduler makes it ``running`` and hands it to the
runner; the runner's outcome makes it ``complete``, ``errored`` or ``waiting`` (with a
``wake_at`` the scheduler's timer honours). On start every ``running`` instance (cut off by
a crash or a stop) is woken at once and replays; ``queued`` and ``waiting`` rows need
nothing: the drain and the timer find them. Nothing loops forever, so virtual time settles.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import rules, schema, views
from edgelet.bindings.workflows.recorder import Recorder
from edgelet.bindings.workflows.runner import Runner
from edgelet.bindings.workflows.scheduler import Scheduler
from edgelet.bindings.workflows.state import StaleRunError, State, WorkflowDef, api_error

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.host_api import HostServices

__all__ = ["Engine", "StaleRunError", "WorkflowDef"]

log = logging.getLogger("edgelet.workflows")


class Engine:
    """Owns the ``workflows`` database and every instance's life; one per host."""

    def __init__(self, host: HostServices, defs: dict[str, WorkflowDef],
                 mocks: dict[str, Any] | None = None) -> None:
        self.state = State(host, defs, mocks if mocks is not None else {})
        self.host = host
        self.clock = self.state.clock
        self.defs = defs
        self.mocks = self.state.mocks
        self.db = self.state.db
        self.recorder = Recorder(self.state)
        self.scheduler = Scheduler(self.state, create=self.create)
        self.runner = Runner(self.state, self.scheduler)
        self.scheduler.dispatch = self.runner.run
        # calls from the running isolate (plugin.py's internal binding) go straight to the
        # recorder: they are the per-step hot path
        self.step_done = self.recorder.step_done
        self.step_retry = self.recorder.step_retry
        self.sleep = self.recorder.sleep
        self.wait_event = self.recorder.wait_event
        #: test handles wait on this instead of polling
        self.wait_change = self.state.wait_change

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Register the workflows, resume what a crash or stop cut off, arm timers."""
        now = self.clock.now()
        with self.state.tx():
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
        self.scheduler.start()

    def stop(self) -> None:
        """Drop timers. Runs in flight stay ``running`` in the database and replay on start."""
        self.state.stopped = True
        self.scheduler.stop()

    # -- lookups ---------------------------------------------------------------------------------
    def _def(self, workflow: str) -> WorkflowDef:
        d = self.defs.get(workflow)
        if d is None:
            known = ", ".join(sorted(self.defs)) or "none"
            raise api_error(LookupError, f"unknown workflow '{workflow}'; workflows: {known}", 404)
        return d

    def _row(self, workflow: str, instance_id: str) -> dict[str, Any]:
        self._def(workflow)
        row = views.instance_row(self.db, workflow, instance_id)
        if row is None:
            raise api_error(LookupError, f"workflow '{workflow}' has no instance '{instance_id}'; "
                                         f"create it first or check the id", 404)
        return row

    # -- management (binding, control API, handles) --------------------------------------------
    def create(self, workflow: str, instance_id: str | None, params: bytes | None,
               trigger: str = "api") -> dict[str, Any]:
        return self.create_batch(workflow, [(instance_id, params)], trigger)[0]

    def create_batch(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]],
                     trigger: str = "api") -> list[dict[str, Any]]:
        """Create up to 100 instances atomically: all of them or, on any error, none."""
        ids = self._new_ids(workflow, items)
        with self.state.tx():
            self._insert(workflow, ids, items, trigger)
        return self._created(workflow, ids, trigger)

    async def create_batch_grouped(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]],
                                   trigger: str = "api") -> list[dict[str, Any]]:
        """:meth:`create_batch` sharing the loop turn's commit with step records and other
        creations (Workers creating instances under load); returns once committed."""
        ids = self._new_ids(workflow, items)
        await self.state.committed(lambda: self._insert(workflow, ids, items, trigger))
        return self._created(workflow, ids, trigger)

    def _new_ids(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]]) -> list[str]:
        """The batch's instance ids (given or new), checked before anything is written."""
        self._def(workflow)
        if not items:
            raise api_error(ValueError, "createBatch needs at least one instance", 400)
        if len(items) > rules.MAX_BATCH:
            raise api_error(ValueError, f"createBatch takes at most {rules.MAX_BATCH} instances, got "
                                        f"{len(items)}; split the batch", 400)
        ids: list[str] = []
        for instance_id, params in items:
            ids.append(rules.check_instance_id(instance_id, workflow=workflow)
                       if instance_id is not None else str(uuid.uuid4()))
            if params is not None and not isinstance(params, (bytes, bytearray)):
                raise api_error(TypeError, "params must arrive encoded (internal error)", 500)
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise api_error(ValueError, f"instance id '{dup}' appears twice in the batch", 409)
        return ids

    def _insert(self, workflow: str, ids: list[str], items: Sequence[tuple[str | None, bytes | None]],
                trigger: str) -> None:
        """The rows of a new batch (inside a transaction); refuses an id already in use."""
        now = self.clock.now()
        for instance_id in ids:
            row = self.db.execute("SELECT status FROM instances WHERE workflow = ? AND id = ?",
                                  (workflow, instance_id)).fetchone()
            if row is not None:
                raise api_error(ValueError, f"instance id '{instance_id}' is already in use in workflow "
                                            f"'{workflow}' (status {row[0]}); choose another id", 409)
        self.db.executemany(
            "INSERT INTO instances (workflow, id, status, params, trigger, created, modified) "
            "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
            [(workflow, i, p, trigger, now, now) for i, (_, p) in zip(ids, items, strict=False)])

    def _created(self, workflow: str, ids: list[str], trigger: str) -> list[dict[str, Any]]:
        """After the commit: log, wake watchers, start what a free slot allows."""
        if log.isEnabledFor(logging.INFO):
            for instance_id in ids:
                log.info("WORKFLOW %s/%s queued (%s)", workflow, instance_id, trigger)
        for instance_id in ids:
            self.state.notify(workflow, instance_id)
        self.scheduler.kick(workflow)
        return [{"id": i, "status": "queued"} for i in ids]

    def exists(self, workflow: str, instance_id: str) -> str:
        self._row(workflow, instance_id)
        return instance_id

    def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """``{status, error, output}`` with ``output`` still encoded (bytes or None)."""
        row = self._row(workflow, instance_id)
        return {"status": row["status"], "error": views.error_of(row), "output": row["output"]}

    def describe(self, workflow: str, instance_id: str) -> dict[str, Any]:
        self._def(workflow)
        return views.describe(self.db, workflow, instance_id)

    def pause(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise api_error(RuntimeError, f"cannot pause instance '{instance_id}' of workflow '{workflow}': "
                                          f"it is {old}; only queued, running or waiting instances can "
                                          f"be paused", 409)
        if old in ("paused", "waitingForPause"):
            return old
        if old == "running":
            with self.state.tx():
                self.state.set(row["seq"], status="waitingForPause")
            self.runner.signal(workflow, instance_id, row["generation"], "pause")
            self.state.status_changed(workflow, instance_id, old, "waitingForPause")
            return "waitingForPause"
        with self.state.tx():
            self.state.set(row["seq"], status="paused", wake_at=None, waiting_for=None)
        self.state.status_changed(workflow, instance_id, old, "paused")
        return "paused"

    def resume(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise api_error(RuntimeError, f"cannot resume instance '{instance_id}' of workflow '{workflow}': "
                                          f"it is {old}; use restart() to run it again", 409)
        if old == "waitingForPause":
            with self.state.tx():
                self.state.set(row["seq"], status="running")
            self.runner.signal(workflow, instance_id, row["generation"], "unpause")
            self.state.status_changed(workflow, instance_id, old, "running")
            return "running"
        if old != "paused":
            return old  # queued, running, waiting: nothing to resume (Cloudflare ignores it too)
        now = self.clock.now()
        with self.state.tx():
            if row["started"] is None:
                self.state.set(row["seq"], status="queued")
                new = "queued"
            else:  # it ran before: it goes ahead of new instances, like any woken one
                self.state.set(row["seq"], status="waiting", wake_at=now)
                new = "waiting"
        self.state.status_changed(workflow, instance_id, old, new)
        self.scheduler.kick(workflow)
        return new

    def terminate(self, workflow: str, instance_id: str) -> str:
        row = self._row(workflow, instance_id)
        old = row["status"]
        if old in schema.FINISHED:
            raise api_error(RuntimeError, f"cannot terminate instance '{instance_id}' of workflow '{workflow}': "
                                          f"it is already {old}", 409)
        with self.state.tx():
            self.state.set(row["seq"], status="terminated", ended=self.clock.now(), wake_at=None,
                           waiting_for=None, generation=row["generation"] + 1)
        if instance_id in self.state.running.get(workflow, ()):
            self.runner.signal(workflow, instance_id, row["generation"], "cancel")
        self.state.status_changed(workflow, instance_id, old, "terminated")
        return "terminated"

    def restart(self, workflow: str, instance_id: str, from_step: str | None = None) -> str:
        """Erase the history (or the part from ``from_step`` on) and run from the top.

        Events taken by erased waits go back to the buffer, so the new run can take them.
        """
        row = self._row(workflow, instance_id)
        seq, old = row["seq"], row["status"]
        with self.state.tx():
            if from_step is not None:
                first = self.db.execute("SELECT seq FROM steps WHERE instance = ? AND name = ? "
                                        "ORDER BY seq LIMIT 1", (seq, from_step)).fetchone()
                if first is None:
                    names = [r[0] for r in self.db.execute(
                        "SELECT DISTINCT name FROM steps WHERE instance = ? ORDER BY seq", (seq,))]
                    raise api_error(ValueError, f"cannot restart instance '{instance_id}' from step "
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
            running = instance_id in self.state.running.get(workflow, ())
            new = "running" if running else "queued"
            self.state.set(seq, status=new, generation=row["generation"] + 1, output=None, error_name=None,
                           error_message=None, ended=None, wake_at=None, waiting_for=None)
        if running:
            self.runner.signal(workflow, instance_id, row["generation"], "cancel")
        self.state.crashes.pop((workflow, instance_id), None)
        log.info("WORKFLOW %s/%s restarted%s", workflow, instance_id,
                 f" from step '{from_step}'" if from_step else "")
        self.state.status_changed(workflow, instance_id, old, new)
        self.scheduler.kick(workflow)
        return new

    def send_event(self, workflow: str, instance_id: str, event_type: str, payload: bytes | None) -> None:
        """Buffer an event; wake the instance if it waits for this type."""
        rules.check_event_type(event_type)
        row = self._row(workflow, instance_id)
        if row["status"] in schema.FINISHED:
            raise api_error(RuntimeError, f"cannot send event '{event_type}' to instance '{instance_id}' of "
                                          f"workflow '{workflow}': it is {row['status']}", 409)
        now = self.clock.now()
        waiting_for = json.loads(row["waiting_for"]) if row["waiting_for"] else []
        wake = row["status"] == "waiting" and event_type in waiting_for
        with self.state.tx():
            self.db.execute("INSERT INTO events (instance, type, payload, timestamp) VALUES (?, ?, ?, ?)",
                            (row["seq"], event_type, payload, now))
            if wake:
                self.state.set(row["seq"], wake_at=now)
        log.info("WORKFLOW %s/%s event '%s' received%s", workflow, instance_id, event_type,
                 "" if wake else " (buffered)")
        self.state.notify(workflow, instance_id)
        if wake:
            self.scheduler.kick(workflow)

    def list(self, workflow: str, status: str | None = None, page: int = 1,
             per_page: int = 50) -> tuple[list[dict[str, Any]], dict[str, int]]:
        self._def(workflow)
        return views.list_instances(self.db, workflow, status, page, per_page)

    def summary(self, workflow: str) -> dict[str, Any]:
        self._def(workflow)
        return views.workflow_summary(self.db, workflow)
