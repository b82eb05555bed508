"""The Workflows engine: one per host, the facade every other module talks to.

Why it is split: the engine has four jobs, each in its own module, wired together here.

* ``engine.py`` (this file): the management API used by the binding, the control API, the
  CLI and test handles (create, status, pause, resume, terminate, restart, send_event,
  list...), plus start and stop;
* ``scheduler.py``: which instance runs when (running slots, the one wake-up timer, cron);
* ``runner.py``: one dispatch of an instance into its Worker's isolate and its outcome;
* ``recorder.py``: the step records a run makes while it runs (group-committed);
* ``state.py``: the database and in-memory bookkeeping they all share.
* ``events.py``: what ``subscribe`` streams (retained and live events, cursors);
* ``checker.py``: the replay check and history export/replay (no step runs).

How an instance moves (``schema.py`` has the rows, and is the whole durable state):
``create`` inserts a ``queued`` row; the scheduler makes it ``running`` and hands it to the
runner; the runner's outcome makes it ``complete``, ``errored`` or ``waiting`` (with a
``wake_at`` the scheduler's timer honours). On start every ``running`` instance (cut off by
a crash or a stop) is woken at once and replays; ``queued`` and ``waiting`` rows need
nothing: the drain and the timer find them. Nothing loops forever, so virtual time settles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import rules, schema, views
from edgelet.bindings.workflows.checker import Checker, describe_report
from edgelet.bindings.workflows.events import parse_filter
from edgelet.bindings.workflows.recorder import Recorder
from edgelet.bindings.workflows.runner import Runner
from edgelet.bindings.workflows.scheduler import Scheduler
from edgelet.bindings.workflows.state import StaleRunError, State, WorkflowDef, api_error

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.host_api import HostServices

__all__ = ["Engine", "StaleRunError", "WorkflowDef"]

log = logging.getLogger("edgelet.workflows")

#: how long an HTTP event stream waits after a live event for the next ones (one write for all)
SSE_LINGER_S = 0.02


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
        self.scheduler.purge = self.purge
        self.checker = Checker(self.state, self.runner)
        self.replay = self.checker.replay
        # calls from the running isolate (plugin.py's internal binding) go straight to the
        # recorder: they are the per-step hot path
        self.step_done = self.recorder.step_done
        self.step_retry = self.recorder.step_retry
        self.sleep = self.recorder.sleep
        self.wait_event = self.recorder.wait_event
        self.recorder.signal = self.runner.signal
        self.runner.apply_recorded = self.recorder.apply_recorded
        self.runner.cut_off = self.recorder.cut_off
        self.attempt_started = self.recorder.attempt_started
        self.attempt_timer = self.recorder.attempt_timer
        self.rollback_done = self.recorder.rollback_done
        self.rollback_retry = self.recorder.rollback_retry
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
                # a new generation: a run of the last platform that is somehow still alive
                # (an isolate commits its own steps, see local.py) can record nothing more
                resumed += self.db.execute(
                    "UPDATE instances SET status = 'waiting', wake_at = ?, modified = ?, "
                    "generation = generation + 1 WHERE workflow = ? AND status = 'running'",
                    (now, now, name)).rowcount
        if resumed or paused:
            log.info("WORKFLOWS resuming %d interrupted instance(s)%s", resumed,
                     f"; {paused} waiting for pause are now paused" if paused else "")
        if self.state.checkpointer is not None:
            self.state.checkpointer.start()
        self.scheduler.start()

    def stop(self) -> None:
        """Drop timers. Runs in flight stay ``running`` in the database and replay on start."""
        self.state.stopped = True
        self.scheduler.stop()
        try:
            self.state.events.close()
        except Exception as exc:  # a full disk: the events of the last moment are lost, never a step
            log.warning("WORKFLOWS could not write the last events on stop: %s", exc)
        if self.state.checkpointer is not None:
            self.state.checkpointer.stop()

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
            raise _missing(workflow, instance_id)
        return row

    # -- management (binding, control API, handles) --------------------------------------------
    def create(self, workflow: str, instance_id: str | None, params: bytes | None,
               trigger: str = "api") -> dict[str, Any]:
        return self.create_batch(workflow, [(instance_id, params)], trigger)[0]

    def create_batch(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]],
                     trigger: str = "api") -> list[dict[str, Any]]:
        """Create up to 100 instances atomically: all of them or, on any error, none.
        They start ``queued`` (a drain runs them): a caller that pauses or terminates one
        right after creating it finds it not started yet."""
        ids = self._new_ids(workflow, items)
        with self.state.tx():
            self._insert(workflow, ids, items, trigger, claim=False)
        return self._created(workflow, ids, trigger)

    async def create_batch_grouped(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]],
                                   trigger: str = "api") -> list[dict[str, Any]]:
        """:meth:`create_batch` sharing the loop turn's commit with step records and other
        creations (Workers creating instances under load); returns once committed. An
        instance a free slot can take is written ``running`` in that same commit and its
        run starts at once (``Scheduler.claim``): the Worker's next call finds it running,
        as it would after a drain, one commit and two tasks sooner."""
        ids = self._new_ids(workflow, items)
        claimed: list[str] = []

        def write() -> None:
            claimed.extend(self._insert(workflow, ids, items, trigger, claim=True))

        commit = asyncio.ensure_future(self.state.committed(write))

        def settle(done: asyncio.Future[Any]) -> None:
            """The caller gave up (its isolate ended) while the commit was queued: the rows
            may still be written ``running``, so their runs start, or their slots go back."""
            if done.cancelled() or done.exception() is not None:
                self.scheduler.release(workflow, claimed)
            else:
                self._created(workflow, ids, trigger, claimed)

        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            if commit.done():
                settle(commit)
            else:
                commit.add_done_callback(settle)
            raise
        except BaseException:
            self.scheduler.release(workflow, claimed)
            raise
        return self._created(workflow, ids, trigger, claimed)

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
                trigger: str, *, claim: bool) -> list[str]:
        """The rows of a new batch (inside a transaction); refuses an id already in use.
        With ``claim``, those the scheduler lets start at once are written ``running``
        (returned)."""
        now = self.clock.now()
        for instance_id in ids:
            row = self.db.execute("SELECT status FROM instances WHERE workflow = ? AND id = ?",
                                  (workflow, instance_id)).fetchone()
            if row is not None:
                raise api_error(ValueError, f"instance id '{instance_id}' is already in use in workflow "
                                            f"'{workflow}' (status {row[0]}); choose another id", 409)
        claimed = self.scheduler.claim(workflow, ids) if claim else []
        running = set(claimed)
        try:
            self.db.executemany(
                "INSERT INTO instances (workflow, id, status, params, trigger, created, modified, started) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(workflow, i, "running" if i in running else "queued", p, trigger, now, now,
                  now if i in running else None) for i, (_, p) in zip(ids, items, strict=False)])
        except BaseException:
            self.scheduler.release(workflow, claimed)
            raise
        return claimed

    def _created(self, workflow: str, ids: list[str], trigger: str,
                 claimed: Sequence[str] = ()) -> list[dict[str, Any]]:
        """After the commit: log, wake watchers, run the claimed instances, start what a
        free slot allows."""
        seqs = self._queued_events(workflow, ids, self.clock.now())  # committed: subscribers may see them
        if log.isEnabledFor(logging.INFO):
            for instance_id in ids:
                log.info("WORKFLOW %s/%s queued (%s)", workflow, instance_id, trigger)
        for instance_id in ids:
            self.state.notify(workflow, instance_id)
        if claimed:
            self.scheduler.start_claimed(workflow, [(seqs[i], i) for i in claimed])
        if len(claimed) < len(ids):
            self.scheduler.kick(workflow)
        return [{"id": i, "status": "queued"} for i in ids]

    def create_many(self, workflow: str, items: Sequence[tuple[str | None, bytes | None]],
                    trigger: str = "api", errors: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """``createBatch({"count"} | {"instances"})``: create what is valid, report the rest.

        Unlike the list form (all or none), each entry stands alone: ``{created: [ids],
        errors: [{index, error}]}``. ``errors`` are entries the caller already rejected
        (their index counts in ``items``' numbering, where they hold a ``None`` place).
        """
        self._def(workflow)
        if not items:
            raise api_error(ValueError, f"createBatch on workflow '{workflow}' needs at least one "
                                        f"instance (count >= 1 or a non-empty instances list)", 400)
        if len(items) > rules.MAX_BATCH:
            raise api_error(ValueError, f"createBatch on workflow '{workflow}' takes at most "
                                        f"{rules.MAX_BATCH} instances, got {len(items)}; split the batch", 400)
        failed: dict[int, str] = {int(e["index"]): str(e["error"]) for e in errors}
        chosen: list[tuple[int, str, bytes | None]] = []
        seen: set[str] = set()
        for index, (instance_id, params) in enumerate(items):
            if index in failed:
                continue
            try:
                iid = (rules.check_instance_id(instance_id, workflow=workflow)
                       if instance_id is not None else str(uuid.uuid4()))
            except (TypeError, ValueError) as exc:
                failed[index] = str(exc)
                continue
            if iid in seen:
                failed[index] = f"instance id '{iid}' appears twice in the batch"
                continue
            seen.add(iid)
            chosen.append((index, iid, params))
        now = self.clock.now()
        created: list[tuple[int, str]] = []
        with self.state.tx():
            for index, iid, params in chosen:
                row = self.db.execute("SELECT status FROM instances WHERE workflow = ? AND id = ?",
                                      (workflow, iid)).fetchone()
                if row is not None:
                    failed[index] = (f"instance id '{iid}' is already in use in workflow '{workflow}' "
                                     f"(status {row[0]}); choose another id")
                    continue
                self.db.execute("INSERT INTO instances (workflow, id, status, params, trigger, created, modified) "
                                "VALUES (?, ?, 'queued', ?, ?, ?, ?)", (workflow, iid, params, trigger, now, now))
                created.append((index, iid))
        self._queued_events(workflow, [iid for _, iid in created], now)
        for _, iid in created:
            log.info("WORKFLOW %s/%s queued (%s)", workflow, iid, trigger)
            self.state.notify(workflow, iid)
        if created:
            self.scheduler.kick(workflow)
        return {"created": [iid for _, iid in created],
                "errors": [{"index": i, "error": failed[i]} for i in sorted(failed)]}

    def _queued_events(self, workflow: str, ids: Sequence[str], now: float) -> dict[str, int]:
        """Emit ``workflow.queued`` for new instances; their seqs by id."""
        seqs: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for seq, iid in self.db.execute(f"SELECT seq, id FROM instances WHERE workflow = ? AND id IN "
                                            f"({marks}) ORDER BY seq", (workflow, *part)):
                self.state.events.emit(seq, "workflow.queued", now)
                seqs[iid] = seq
        return seqs

    def delete(self, workflow: str, instance_id: str) -> None:
        """Remove a finished instance and its whole history; a live one raises (409)."""
        self.delete_batch(workflow, [instance_id], what="delete()")

    def delete_batch(self, workflow: str, ids: Sequence[str], what: str = "deleteBatch") -> int:
        """Remove up to 100 finished instances at once: all of them or, on any error, none."""
        self._def(workflow)
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
            raise api_error(TypeError, f"{what} on workflow '{workflow}' takes a list of instance ids", 400)
        if len(ids) > rules.MAX_BATCH:
            raise api_error(ValueError, f"{what} on workflow '{workflow}' takes at most {rules.MAX_BATCH} "
                                        f"instance ids, got {len(ids)}; split the list", 400)
        seqs: list[int] = []
        for instance_id in ids:
            row = self._row(workflow, instance_id)
            if row["status"] not in schema.FINISHED:
                raise api_error(RuntimeError, f"{what} on workflow '{workflow}': instance '{instance_id}' is "
                                              f"{row['status']}; only complete, errored or terminated instances "
                                              f"can be deleted (terminate it first)", 409)
            seqs.append(row["seq"])
        with self.state.tx():
            erase(self.db, seqs)
        for instance_id in ids:
            log.info("WORKFLOW %s/%s deleted", workflow, instance_id)
            self.state.notify(workflow, instance_id)
        return len(seqs)

    def purge(self) -> int:
        """Delete the finished instances whose retention is over (the platform clock)."""
        now = self.clock.now()
        gone = 0
        for d in self.defs.values():
            while True:
                rows = self.db.execute(
                    "SELECT seq, id FROM instances WHERE workflow = ? AND status IN ('complete', 'errored', "
                    "'terminated') AND ended <= ? ORDER BY ended LIMIT 500",
                    (d.name, now - d.retention_s)).fetchall()
                if not rows:
                    break
                with self.state.tx():
                    erase(self.db, [r[0] for r in rows])
                gone += len(rows)
                log.info("WORKFLOWS %s: %d finished instance(s) past their retention (%s) deleted", d.name,
                         len(rows), rules.describe_s(d.retention_s))
        return gone

    # -- subscribe ----------------------------------------------------------------------------------
    def subscribe(self, workflow: str, instance_id: str, filter: Any = None,  # noqa: A002
                  cursor: Any = None, batches: bool = False) -> AsyncIterator[Any]:
        """The instance's retained events after ``cursor``, then live ones until it ends
        (``batches``: lists of the events already there). Bad input (an unknown cursor or
        event type) raises here, before iterating."""
        row = self._row(workflow, instance_id)
        types = parse_filter(filter, workflow)
        after = self.state.events.check_cursor(row["seq"], cursor, workflow, instance_id)
        if batches:
            return self.state.events.subscribe_batches(row["seq"], types, after, self._finished(row["seq"]),
                                                       linger=SSE_LINGER_S)
        return self.state.events.subscribe(row["seq"], types, after, self._finished(row["seq"]))

    async def subscribe_poll(self, workflow: str, instance_id: str, filter: Any, cursor: Any,  # noqa: A002
                             wait_s: float, first: bool) -> dict[str, Any]:
        """One page of events for a subscriber in an isolate: ``{events, last, done}``."""
        row = self._row(workflow, instance_id)
        types = parse_filter(filter, workflow)
        if first:
            after = self.state.events.check_cursor(row["seq"], cursor, workflow, instance_id)
        else:
            after = int(cursor or 0)
        return await self.state.events.poll(row["seq"], types, after, min(float(wait_s), 60.0),
                                            self._finished(row["seq"]))

    def _finished(self, seq: int) -> Callable[[], bool]:
        """Whether the instance has ended and said so: a run still holding its slot may have
        committed its completion in the isolate (local.py) before the host emitted the
        last events, which a subscriber must still get."""
        def finished() -> bool:
            row = self.db.execute("SELECT status, workflow, id FROM instances WHERE seq = ?", (seq,)).fetchone()
            return row is None or (row[0] in schema.FINISHED and row[2] not in self.state.running.get(row[1], ()))
        return finished

    # -- the replay check ---------------------------------------------------------------------------
    async def check(self, workflow: str, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        """Replay every unfinished instance of ``workflow`` against the current code (no step
        runs); a page of them with ``limit`` (see :meth:`Checker.check`)."""
        self._def(workflow)
        return await self.checker.check(workflow, after, limit)

    def export(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """The instance's recorded history as JSON, for ``replay`` in a test suite."""
        row = self._row(workflow, instance_id)
        return self.checker.export(workflow, row["seq"], (row["id"], row["status"], row["generation"],
                                                          row["params"], row["created"]))

    async def check_after_reload(self, script: str) -> None:
        """``edgelet dev`` reloaded ``script``: warn about each instance its workflows would break."""
        for d in self.defs.values():
            if d.script != script:
                continue
            try:
                result = await self.check(d.name)
            except Exception as exc:  # a script that no longer loads says so itself
                log.warning("WORKFLOWS %s: replay check after reload failed: %s", d.name, exc)
                continue
            for r in result["instances"]:
                if not r["ok"]:
                    log.warning("WORKFLOW %s", describe_report(d.name, r))
            if result["checked"]:
                log.info("WORKFLOWS %s: replay check after reload: %d unfinished instance(s), %d would "
                         "diverge", d.name, result["checked"], result["diverged"])

    def exists(self, workflow: str, instance_id: str) -> str:
        self._row(workflow, instance_id)
        return instance_id

    def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """``{status, error, output}`` with ``output`` still encoded (bytes or None)."""
        self._def(workflow)
        info = views.status_info(self.db, workflow, instance_id)
        if info is None:
            raise _missing(workflow, instance_id)
        return info

    def describe(self, workflow: str, instance_id: str) -> dict[str, Any]:
        self._def(workflow)
        return views.describe(self.db, workflow, instance_id, boot=self.recorder.boot)

    def pause(self, workflow: str, instance_id: str) -> str:
        with self.state.tx():
            # read under the write lock, as terminate(): the isolate running it commits its
            # completion itself (local.py), so a status read before BEGIN may be stale by
            # then (a complete instance turned waitingForPause, an event it never had)
            row = self._row(workflow, instance_id)
            old = row["status"]
            if old in schema.FINISHED:
                raise api_error(RuntimeError, f"cannot pause instance '{instance_id}' of workflow "
                                              f"'{workflow}': it is {old}; only queued, running or waiting "
                                              f"instances can be paused", 409)
            if old in ("paused", "waitingForPause"):
                return old
            if old == "running":
                new = "waitingForPause"
                self.state.set(row["seq"], status=new)
            else:
                new = "paused"
                self.state.set(row["seq"], status=new, wake_at=None, waiting_for=None)
        if old == "running":
            self.runner.signal(workflow, instance_id, row["generation"], "pause")
        self.state.status_changed(workflow, instance_id, old, new)
        return new

    def resume(self, workflow: str, instance_id: str) -> str:
        with self.state.tx():
            row = self._row(workflow, instance_id)  # under the write lock, as pause()
            old = row["status"]
            if old in schema.FINISHED:
                raise api_error(RuntimeError, f"cannot resume instance '{instance_id}' of workflow "
                                              f"'{workflow}': it is {old}; use restart() to run it again", 409)
            if old == "waitingForPause":
                new = "running"
                self.state.set(row["seq"], status=new)
            elif old != "paused":
                return old  # queued, running, waiting: nothing to resume (Cloudflare ignores it too)
            elif row["started"] is None:
                new = "queued"
                self.state.set(row["seq"], status=new)
            else:  # it ran before: it goes ahead of new instances, like any woken one
                new = "waiting"
                self.state.set(row["seq"], status=new, wake_at=self.clock.now())
        if old == "waitingForPause":
            self.runner.signal(workflow, instance_id, row["generation"], "unpause")
        self.state.status_changed(workflow, instance_id, old, new)
        if new != "running":
            self.scheduler.kick(workflow)
        return new

    def terminate(self, workflow: str, instance_id: str) -> str:
        with self.state.tx():
            # read under the write lock: the isolate running it commits its completion
            # itself (local.py), so a status read before BEGIN may be stale by now
            row = self._row(workflow, instance_id)
            old = row["status"]
            if old in schema.FINISHED:
                raise api_error(RuntimeError, f"cannot terminate instance '{instance_id}' of workflow "
                                              f"'{workflow}': it is already {old}", 409)
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
                self.db.execute("DELETE FROM attempts_in_flight WHERE instance = ? AND name = ? AND count = ?",
                                (seq, name, count))
            self.db.execute("DELETE FROM steps WHERE instance = ? AND seq >= ?", (seq, cut))
            self.db.execute("DELETE FROM rollbacks WHERE instance = ?", (seq,))
            self.db.execute("DELETE FROM rollback_attempts WHERE instance = ?", (seq,))
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
             per_page: int = 50, id_prefix: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
        self._def(workflow)
        return views.list_instances(self.db, workflow, status, page, per_page, id_prefix)

    def summary(self, workflow: str) -> dict[str, Any]:
        self._def(workflow)
        return views.workflow_summary(self.db, workflow)


def _missing(workflow: str, instance_id: str) -> Exception:
    return api_error(LookupError, f"workflow '{workflow}' has no instance '{instance_id}'; "
                                  f"create it first or check the id", 404)


def erase(db: Any, seqs: Sequence[int]) -> None:
    """Delete instances and everything recorded for them (inside a transaction)."""
    for table in ("events", "attempts", "steps", "rollback_attempts", "rollbacks", "history_events",
                  "attempts_in_flight"):
        db.executemany(f"DELETE FROM {table} WHERE instance = ?", [(s,) for s in seqs])
    db.executemany("DELETE FROM instances WHERE seq = ?", [(s,) for s in seqs])
