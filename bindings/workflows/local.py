"""Isolate side: a finished step committed by the isolate that ran it, not by the host.

Why: a step's result must be durable before ``run`` sees it. Sent to the host, that cost a
round trip per step (the record's send, the host waking, its commit, the answer's send,
the isolate waking): two wake-ups of the other process, most of a sequential step's time
and two thirds of its CPU. With the state on disk, the isolate opens the same
``workflows.sqlite3`` and commits the step's rows itself, with the SQL the host would have
run (``records.py``), in a transaction that first checks the run still owns the instance
(its ``generation``): one local commit per step, no round trip. Records made in one loop
turn share one commit (``edgelet.group_commit``), as on the host.

What follows a commit on the host (events for ``subscribe``, the log line, test watchers)
still happens there: each committed step leaves a note (``wire.Recorded``) that rides with
the session's next call to the host, or with its outcome, or leaves on its own after
``NOTE_FLUSH_S``; a sequential run talks to the host at its start and end only. The host
applies notes in the order the isolate committed them (``Recorder.apply_recorded``).

The run's outcome ``complete`` is committed here too (``LocalRecorder.complete``), so a
caller polling ``status()`` sees it at once; the host, told by the outcome, does the rest.
``status()`` itself is read from the file here (``LocalRecorder.status``), without a round
trip to the host per poll.

A run alone in its isolate commits each step at once, without the loop turn a shared
commit waits for (``GroupCommit.commit_now``; nothing else could join that turn's
transaction), and gives the loop a turn at least every ``INLINE_BUDGET_S``. With several
runs, their records of one loop turn share one commit.

What stays on the host (``RunSession.step_done`` decides): state in memory (no file to
share), a virtual clock (attempt timeouts are host timers), a step whose attempt the host
was told is still running (its ``attempts_in_flight`` row is the host's to remove), and
every record that is not a finished step or a completion (retries, sleeps, events,
rollbacks, errors): none of them is per step.

Sharing the file with the host: both connections use WAL, so readers never wait; writers
take turns on SQLite's write lock. Neither side lets SQLite's busy handler sleep its loop
(1, 2, 5 ... ms at a time, measured as most of the spread of a 10-step instance): this
side's commit is tried again on a later loop turn (``GroupCommit(retry_busy_s=...)``), and
the host's periodic event write comes back later (``EventLog.flush(wait=False)``). The
host's other writes (creations, status changes) still wait in the busy handler: an
isolate's transaction holds the lock for tens of microseconds.

Crash guarantees are those of the host path: the step is committed before ``run`` goes
on, so a ``kill -9`` (of the isolate or the whole platform) loses at most the attempt in
flight, never a recorded step; a run the host has given up on (crash, reload, platform
restart) had its instance's generation bumped by the host, so it can record nothing more.
A killed isolate's notes are lost with it: the events of its last moments, never a step
(the same promise as ``events.py``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from edgelet.bindings.workflows import records, wire

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.group_commit import GroupCommit
    from edgelet.runtime.isolate_api import IsolateServices

log = logging.getLogger("edgelet.workflows")

T = TypeVar("T")

#: notes of committed steps wait at most this long for a call or an outcome to ride with
NOTE_FLUSH_S = 0.02

#: the host holds the write lock: the commit is tried again after this long (uvloop runs a
#: sub-millisecond timer on its next turn, so the loop keeps serving everything else)
BUSY_RETRY_S = 0.0002

#: a run alone in its isolate commits its steps without a loop turn for this long, then
#: gives the loop one (``LocalRecorder._commit``)
INLINE_BUDGET_S = 0.001

#: this isolate's writer (set by ``configure``; None: every record goes through the host)
LOCAL: LocalRecorder | None = None


def configure(runtime: IsolateServices, database: str | None) -> None:
    """Called at the isolate's start with the file the host named (None: in memory or a
    virtual clock, so the host records everything)."""
    global LOCAL
    LOCAL = LocalRecorder(runtime, database) if database else None


class LocalRecorder:
    """Commits finished steps to ``workflows.sqlite3`` from inside the isolate."""

    def __init__(self, runtime: IsolateServices, path: str) -> None:
        self._runtime = runtime
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._group: GroupCommit | None = None
        #: the file could not be opened: the host records everything from now on
        self.broken = False
        #: (workflow, instance) -> notes of committed steps the host has not been told of
        self._notes: dict[tuple[str, str], list[wire.Recorded]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[Any]] = set()
        #: runs going on in this isolate (``isolate._run``); with one, steps commit at once
        self.runs = 0
        #: when a step last gave the loop a turn (``_commit``)
        self._yielded = 0.0
        self._not_now: type[Exception] = Exception  # NotNow, once the file is open
        #: step records waiting for this loop turn's shared write, and those it took
        self._queued: list[tuple[wire.StepDone, list[wire.Attempt], asyncio.Future[Any]]] = []
        self._taken: list[tuple[wire.StepDone, list[wire.Attempt], asyncio.Future[Any]]] = []
        self._results: list[tuple[str, int] | records.StaleRunError] = []

    def _open(self) -> GroupCommit:
        """The connection, opened at the first step (after the fork, in this process)."""
        from edgelet.group_commit import GroupCommit, NotNow
        from edgelet.state import open_database
        self._not_now = NotNow
        self._db = open_database(self._path)  # WAL, synchronous=NORMAL: as the host's
        # the host holding the write lock makes the commit wait, not the isolate's loop
        self._db.execute("PRAGMA busy_timeout = 0")
        # nor does a checkpoint's fsync: the host's thread checkpoints (checkpoint.py)
        from edgelet.bindings.workflows.checkpoint import leave_checkpoints
        leave_checkpoints(self._db)
        self._group = GroupCommit(self._db, "workflow step record", retry_busy_s=BUSY_RETRY_S)
        return self._group

    def usable(self) -> bool:
        if self._group is not None:
            return True
        if self.broken:
            return False
        try:
            self._open()
            return True
        except Exception as exc:  # the host's path still works: use it, and say why once
            self.broken = True
            log.warning("workflows: this isolate cannot open %s (%s); steps are recorded through the host",
                        self._path, exc)
            return False

    async def step_done(self, record: wire.StepDone, attempts: list[wire.Attempt]) -> dict[str, Any]:
        """Commit the step; the answer the host would give (``{"pause": bool}``).
        StaleRunError when the run no longer owns the instance (nothing written)."""
        group = self._group
        assert group is not None and self._db is not None, "usable() opens the file first"
        committed = None
        if self.runs == 1 and time.perf_counter() - self._yielded < INLINE_BUDGET_S:
            committed = self._step_now(group, record, attempts)
        if committed is None:
            try:
                committed = await self._queue_step(group, record, attempts)
            finally:
                self._yielded = time.perf_counter()
        status, seq, now = committed
        key = (record.workflow, record.instance)
        notes = self._notes.get(key)
        if notes is None:
            notes = self._notes[key] = []
        notes.append(wire.Recorded(record, status, seq, now))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(NOTE_FLUSH_S, self._flush)
        return {"pause": status == "waitingForPause"}

    def _step_now(self, group: GroupCommit, record: wire.StepDone, attempts: list[wire.Attempt]
                  ) -> tuple[str, int, float] | None:
        """A run alone in its isolate: the step committed at once (see :meth:`_commit`);
        None when that cannot be done now (writes queued first, the host holds the lock)."""
        db = self._db
        assert db is not None

        def write() -> tuple[str, int, float]:
            now = time.time()  # the platform's real clock (a virtual one keeps the host path)
            status, seq = records.step_done(db, record, attempts, now)
            return status, seq, now

        try:
            return group.commit_now(write)
        except self._not_now:
            return None

    def _queue_step(self, group: GroupCommit, record: wire.StepDone, attempts: list[wire.Attempt]
                    ) -> asyncio.Future[tuple[str, int, float]]:
        """The step joins this loop turn's other step records: one write in the shared
        transaction for all of them (``records.steps_done``), each answered after its COMMIT.

        Why one write for the turn's steps rather than one each: with many runs at once,
        a write each cost a SAVEPOINT, a SELECT, an INSERT and a RELEASE per step; together
        they cost one query per workflow and one ``executemany``."""
        future: asyncio.Future[tuple[str, int, float]] = asyncio.get_running_loop().create_future()
        self._queued.append((record, attempts, future))
        if len(self._queued) == 1:
            group.submit(self._write_queued, self._settle_queued)
        return future

    def _write_queued(self) -> float:
        """The shared transaction's write: every step queued until now (taken here, so a step
        queued after this write waits for the next one)."""
        db = self._db
        assert db is not None
        self._taken, self._queued = self._queued, []
        now = time.time()
        self._results = records.steps_done(db, [(r, a) for r, a, _ in self._taken], now)
        return now

    def _settle_queued(self, now: Any, error: BaseException | None) -> None:
        """After the COMMIT (or its failure): answer each step written by :meth:`_write_queued`."""
        taken, results = self._taken, self._results
        self._taken, self._results = [], []
        if not taken:  # the transaction failed before the write ran: the queue never left
            taken, self._queued = self._queued, []
        for (_, _, future), result in zip(taken, results if error is None else [None] * len(taken), strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                assert result is not None
                future.set_result((result[0], result[1], now))

    def started(self) -> None:
        """A run starts (``isolate._run``), on a loop turn of its own: the time budget of
        :meth:`_commit` counts from here."""
        self.runs += 1
        self._yielded = time.perf_counter()

    async def _commit(self, group: GroupCommit, write: Callable[[], T], *, alone: bool) -> T:
        """A commit at once when ``alone`` (this isolate runs one instance, so no other
        run's record could share the loop turn's transaction), else in the turn's shared one.

        Why: a sequential run's step waited a loop turn for its commit and another for its
        task to wake (a third of a step's time). Committed at once, the run still yields
        its loop every ``INLINE_BUDGET_S`` (one step then takes the shared path), so a
        run of quick steps holds the isolate no longer than that."""
        if alone and time.perf_counter() - self._yielded < INLINE_BUDGET_S:
            try:
                return group.commit_now(write)
            except self._not_now:  # writes queued first, or the host holds the lock
                pass
        try:
            return await group.run(write)
        finally:
            self._yielded = time.perf_counter()

    async def complete(self, workflow: str, instance: str, generation: int,
                       output: bytes | None) -> dict[str, Any] | None:
        """Commit the run's outcome ``complete`` (the instance's row): ``{"old": status,
        "at": time}`` for the host, which then does what follows a completion (events,
        the slot, watchers) without a commit of its own; None when the run no longer owns
        the instance or the commit failed (the host records the outcome itself).

        Why here: a caller polling ``status()`` sees ``complete`` as soon as this commit is
        made, not once the host has been scheduled to read the outcome and commit it."""
        group, db = self._group, self._db
        if group is None or db is None:
            return None

        def write() -> dict[str, Any] | None:
            now = time.time()
            old = records.complete(db, workflow, instance, generation, output, now)
            return None if old is None else {"old": old, "at": now}

        try:  # the run has ended: alone when no other runs in this isolate
            return await self._commit(group, write, alone=self.runs == 0)
        except Exception:  # a full disk, say: the host tries (and reports) it
            return None

    def status(self, workflow: str, instance: str) -> dict[str, Any] | None:
        """``status()`` read from the file, as the host would answer it; None when the
        file cannot be read here or has no such instance (the host answers, or names the
        error).

        Why: a Worker polling an instance it created paid a round trip to the host per
        poll, and the run it waits for (often in this very isolate) shares the loop with
        those answers. WAL gives this read the last committed state, the same the host
        reads: a completion this isolate just committed, a pause the host committed before
        it answered the Worker's ``pause()``."""
        if not self.usable():
            return None
        from edgelet.bindings.workflows import views
        assert self._db is not None
        try:
            return views.status_info(self._db, workflow, instance)
        except sqlite3.Error:  # the host's read still works
            return None

    def take(self, workflow: str, instance: str) -> list[wire.Recorded]:
        """The instance's notes not yet told, handed to a message about to be written
        (a call to the host, the run's outcome), which the host reads in order."""
        return self._notes.pop((workflow, instance), []) if self._notes else []

    def _flush(self) -> None:
        """Notes that found no message to ride with go on their own."""
        self._timer = None
        if self._notes:
            task = asyncio.ensure_future(self._send())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        # taken when the call is written (same step of this task): a message written after
        # it carries what was committed after these, so the host keeps the order
        notes = [n for group in self._notes.values() for n in group]
        self._notes.clear()
        if not notes:
            return
        try:
            await self._runtime.call_host("workflows", "recorded", notes)
        except Exception:  # the platform is going away: the steps are stored, their events lost
            pass
