"""When instances run: free running slots are filled from the database, one timer wakes sleepers.

Why a module of its own: scheduling is the part that must never loop forever (virtual time
in tests only settles when nothing does) and never load a long queue into memory. It owns
every timer of the engine and decides *which* instance runs next; it never runs one itself
(``runner.py`` does) and never writes history (``recorder.py`` does).

* A *drain* fills the workflow's free slots: woken instances first (``waiting`` with
  ``wake_at`` passed, earliest first), then ``queued`` ones in creation order; each becomes
  ``running`` and gets a dispatch task.
* ONE clock timer is armed for the earliest future ``wake_at``; when it fires it spawns
  drains and returns.
* Cron schedules create instances (``trigger = 'cron'``) through the engine's ``create``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import codec, views
from edgelet.bindings.workflows.state import State

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.clock import TimerHandle

log = logging.getLogger("edgelet.workflows")

#: how many rows one drain round reads, so a long queue never loads into memory
DRAIN_BATCH = 256
#: instances of one workflow executing at once, whatever its ``concurrency``: every running
#: run is a coroutine in one Python isolate, so starting 50,000 at once costs gigabytes for
#: nothing; the rest stay queued (or due) rows and start as runs suspend or finish.
#: ``EDGELET_WORKFLOWS_MAX_ACTIVE`` changes it.
MAX_ACTIVE = int(os.environ.get("EDGELET_WORKFLOWS_MAX_ACTIVE", "4096"))

#: ``(workflow, instance_id, seq)`` -> the task that holds one running slot until it is free
Dispatch = Callable[[str, str, int], Coroutine[Any, Any, None]]
#: ``(workflow, instance_id, params, trigger)`` -> the created instance, as ``Engine.create``
Create = Callable[..., dict[str, Any]]


class Scheduler:
    """Fills running slots and keeps the engine's timers (the wake-up and the cron ones)."""

    def __init__(self, state: State, create: Create) -> None:
        self.state = state
        self.host = state.host
        self.clock = state.clock
        self.db = state.db
        self.defs = state.defs
        self._create = create
        #: set by the engine once the runner exists (the runner also needs the scheduler)
        self.dispatch: Dispatch | None = None
        self._drain_pending: set[str] = set()
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._cron_timers: list[TimerHandle] = []
        #: set by the engine: deletes finished instances past their retention
        self.purge: Callable[[], int] | None = None
        self._retention_timer: TimerHandle | None = None
        self._retention_at: float | None = None
        state.on_finished = self.note_finished

    def start(self) -> None:
        """Start what is due, arm the wake-up timer and every cron schedule."""
        for name in self.defs:
            self.kick(name)
        self.arm()
        self.arm_retention()
        for d in self.defs.values():
            for expr in d.schedules:
                self._arm_cron(d.name, expr)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in self._cron_timers:
            timer.cancel()
        self._cron_timers.clear()
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None

    # -- retention: finished instances are deleted on the platform clock ------------------------
    def arm_retention(self) -> None:
        """Arm ONE timer at the earliest end of retention of any finished instance."""
        best: float | None = None
        for d in self.defs.values():
            t = self.db.execute("SELECT MIN(ended) FROM instances WHERE workflow = ? AND status IN "
                                "('complete', 'errored', 'terminated')", (d.name,)).fetchone()[0]
            if t is not None and (best is None or t + d.retention_s < best):
                best = t + d.retention_s
        self._set_retention_timer(best)

    def note_finished(self, workflow: str, ended: float) -> None:
        """An instance finished: its retention ends at ``ended + retention``."""
        d = self.defs.get(workflow)
        if d is None or self.state.stopped:
            return
        when = ended + d.retention_s
        if self._retention_timer is None or self._retention_at is None or when < self._retention_at:
            self._set_retention_timer(when)

    def _set_retention_timer(self, when: float | None) -> None:
        if self.state.stopped:
            return
        if self._retention_timer is not None:
            self._retention_timer.cancel()
        self._retention_timer, self._retention_at = None, when
        if when is not None:
            self._retention_timer = self.clock.call_at(when, self._on_retention, housekeeping=True)

    def _on_retention(self) -> None:
        self._retention_timer = self._retention_at = None
        if self.state.stopped:
            return
        if self.purge is not None:
            self.purge()
        self.arm_retention()

    # -- slots ----------------------------------------------------------------------------------
    def kick(self, workflow: str) -> None:
        """Spawn a drain for ``workflow`` unless one is pending or no slot is free."""
        d = self.defs.get(workflow)
        if d is None or self.state.stopped or workflow in self._drain_pending:
            return
        if len(self.state.running[workflow]) >= min(d.concurrency, MAX_ACTIVE):
            return
        self._drain_pending.add(workflow)
        self.host.spawn(self._drain_task(workflow), name=f"workflows drain {workflow}")

    def claim(self, workflow: str, ids: list[str]) -> list[str]:
        """Inside a creation's transaction: those of ``ids`` that start at once, counted as
        running from now (their rows are written ``running``); :meth:`start_claimed` after
        the commit, :meth:`release` if it failed.

        Why: a drain after the creation cost a second commit and two tasks before the run
        began (a sixth of a 10-step instance's time end to end). Only when a slot is free and
        nothing is queued or due ahead of them, so the order a drain would follow is kept.
        """
        d = self.defs[workflow]
        running = self.state.running[workflow]
        free = min(d.concurrency, MAX_ACTIVE) - len(running)
        if free <= 0 or self.state.stopped or workflow in self._drain_pending:
            return []
        if self.db.execute("SELECT 1 FROM instances WHERE workflow = ? AND status = 'queued' LIMIT 1",
                           (workflow,)).fetchone() is not None:
            return []
        if self.db.execute("SELECT 1 FROM instances WHERE workflow = ? AND status = 'waiting' AND wake_at <= ? "
                           "LIMIT 1", (workflow, self.clock.now())).fetchone() is not None:
            return []
        chosen = ids[:free]
        running.update(chosen)
        return chosen

    def release(self, workflow: str, ids: list[str]) -> None:
        """The creation that claimed ``ids`` was not stored: their slots are free again."""
        self.state.running[workflow].difference_update(ids)

    def start_claimed(self, workflow: str, started: list[tuple[int, str]]) -> None:
        """After the creation's commit: run the claimed instances (``(seq, id)``)."""
        assert self.dispatch is not None, "the engine wires the runner in before starting"
        for seq, instance_id in started:
            self.state.status_changed(workflow, instance_id, "queued", "running")
            self.host.spawn(self.dispatch(workflow, instance_id, seq), name=f"workflow {workflow}/{instance_id}")

    async def _drain_task(self, workflow: str) -> None:
        self._drain(workflow)

    def _drain(self, workflow: str) -> None:
        """Fill free slots: woken instances first (earliest wake), then queued (oldest)."""
        self._drain_pending.discard(workflow)
        assert self.dispatch is not None, "the engine wires the runner in before starting"
        limit = min(self.defs[workflow].concurrency, MAX_ACTIVE)
        running = self.state.running[workflow]
        now = self.clock.now()
        while not self.state.stopped and len(running) < limit:
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
            with self.state.tx():
                self.db.executemany(
                    "UPDATE instances SET status = 'running', started = COALESCE(started, ?), "
                    "modified = ?, wake_at = NULL, waiting_for = NULL WHERE seq = ?",
                    [(now, now, r[0]) for r in rows])
            for seq, instance_id, old in rows:
                running.add(instance_id)
                self.state.status_changed(workflow, instance_id, old, "running")
                self.host.spawn(self.dispatch(workflow, instance_id, seq),
                                name=f"workflow {workflow}/{instance_id}")
        # the same `now` as the due check above: whatever was not due then gets the timer
        # (timers may fire a little early, so a fresh reading could skip an instance)
        self.arm(now)

    # -- the one wake-up timer ------------------------------------------------------------------
    def arm(self, now: float | None = None) -> None:
        """Keep ONE clock timer, at the earliest ``wake_at`` after ``now`` of any workflow."""
        if self.state.stopped:
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
            log.debug("workflows: next wake-up at %s", views.iso(best))
            self._timer = self.clock.call_at(best, self._on_timer)

    def note_wake(self, when: float | None) -> None:
        """An instance will be due at ``when``: pull the timer in if that is sooner."""
        if when is None or self.state.stopped:
            return
        if self._timer is None or self._timer_at is None or when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            log.debug("workflows: next wake-up at %s", views.iso(when))
            self._timer_at = when
            self._timer = self.clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for name in self.defs:
            self.kick(name)
        self.arm()

    # -- cron triggers --------------------------------------------------------------------------
    def _arm_cron(self, workflow: str, expr: str) -> None:
        from edgelet.cron import next_fire
        when = next_fire(expr, self.clock.now())

        def fire() -> None:
            if self.state.stopped:
                return
            self.host.spawn(self._cron_create(workflow, expr, when), name=f"workflow cron {workflow}")
            self._arm_cron(workflow, expr)

        self._cron_timers.append(self.clock.call_at(when, fire))

    async def _cron_create(self, workflow: str, expr: str, when: float) -> None:
        params = codec.encode({"cron": expr, "scheduledTime": int(when * 1000)})
        try:
            created = self._create(workflow, None, params, trigger="cron")
            log.info("WORKFLOW %s cron %r created instance %s", workflow, expr, created["id"])
        except Exception as exc:  # pragma: no cover - a full disk, say
            log.error("WORKFLOW %s cron %r could not create an instance: %s", workflow, expr, exc)
