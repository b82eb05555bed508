"""What every part of the Workflows engine shares: the database, the running set, watchers.

Why a module of its own: the scheduler, the runner, the recorder and the management API
(``engine.py``) all read and write the same instance rows and must announce status changes
the same way. Keeping that shared core here lets each of them import it without importing
one another (no cycles), and keeps the in-memory state small enough to see in one screen.
The *durable* state is described in ``schema.py``; everything here is rebuilt on start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import schema
from edgelet.bindings.workflows.checkpoint import Checkpointer, leave_checkpoints
from edgelet.bindings.workflows.records import StaleRunError
from edgelet.group_commit import GroupCommit
from edgelet.state import BUSY_TIMEOUT_MS

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.workflows")

__all__ = ["State", "StaleRunError", "WorkflowDef", "api_error"]


#: how soon the host's group commit that found the write lock held tries again: a timer,
#: not a spin (the host serves everything else meanwhile; an isolate's commit takes tens
#: of microseconds, but a descheduled isolate may hold the lock for longer)
BUSY_RETRY_S = 0.001

_FINAL_EVENTS = {"complete": "workflow.completed", "errored": "workflow.errored",
                 "terminated": "workflow.terminated"}


def api_error(cls: type[Exception], message: str, status: int) -> Exception:
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
    #: ``limits.steps``: steps (of every kind) one instance may record
    max_steps: int = 10_000
    #: seconds a finished instance is kept before the platform deletes it
    retention_s: float = 7 * 86400.0


class State:
    """The ``workflows`` database plus the in-memory bookkeeping every collaborator needs."""

    def __init__(self, host: HostServices, defs: dict[str, WorkflowDef], mocks: dict[str, Any]) -> None:
        self.host = host
        self.clock = host.clock
        self.defs = defs
        self.mocks = mocks
        self.db = host.database(schema.DATABASE)
        schema.install(self.db)
        #: on disk: WAL checkpoints run on a thread, not inside a commit (``checkpoint.py``)
        self.checkpointer: Checkpointer | None = None
        if host.state_dir is not None:
            from edgelet.state import database_path
            leave_checkpoints(self.db)
            self.checkpointer = Checkpointer(database_path(host.state_dir, schema.DATABASE))
        #: instance ids holding a running slot, per workflow (a dispatch task each)
        self.running: dict[str, set[str]] = {name: set() for name in defs}
        #: consecutive isolate crashes per instance, reset by a run that returns
        self.crashes: dict[tuple[str, str], int] = {}
        self.watchers: dict[tuple[str, str], asyncio.Event] = {}
        self.stopped = False
        #: called with (workflow, when) as an instance finishes (the scheduler's retention timer)
        self.on_finished: Callable[[str, float], None] | None = None
        from edgelet.bindings.workflows.events import EventLog
        #: subscribe's events (retained and live)
        self.events = EventLog(self)
        #: ``await state.committed(write)``: writes made in one loop turn (step records,
        #: creations from Workers, completions) share one commit, each caller answered after it
        #: an isolate commits its own steps to this file (local.py): a held write lock makes
        #: these writes come back a moment later instead of sleeping the host's loop
        self.group = GroupCommit(self.db, "workflow record", retry_busy_s=BUSY_RETRY_S)
        self.committed = self.group.run

    @contextmanager
    def tx(self, *, wait: bool = True) -> Iterator[None]:
        """A write transaction. ``wait=False``: SQLITE_BUSY at once when another connection
        (an isolate's, see local.py) holds the write lock, instead of SQLite's busy handler
        sleeping the whole loop for 1, 2, 5 ... ms; for writes that can come back later."""
        if wait:
            self.db.execute("BEGIN IMMEDIATE")
        else:
            self.db.execute("PRAGMA busy_timeout = 0")
            try:
                self.db.execute("BEGIN IMMEDIATE")
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite ends it by itself on some errors (disk full)
                self.db.execute("ROLLBACK")
            raise

    def set(self, seq: int, **values: Any) -> None:
        """Update columns of one instance row (inside a transaction), stamping ``modified``."""
        values.setdefault("modified", self.clock.now())
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE instances SET {cols} WHERE seq = ?", (*values.values(), seq))

    def status_changed(self, workflow: str, instance_id: str, old: str, new: str,
                       detail: str = "") -> None:
        if old != new:
            log.info("WORKFLOW %s/%s %s -> %s%s", workflow, instance_id, old, new, detail)
            self._emit_status(workflow, instance_id, old, new)
            if new in schema.FINISHED and self.on_finished is not None:
                self.on_finished(workflow, self.clock.now())
        self.notify(workflow, instance_id)

    def _emit_status(self, workflow: str, instance_id: str, old: str, new: str) -> None:
        """The ``workflow.*`` event a status change means, if any."""
        if new == "running" and old == "queued":
            kind = "workflow.started"
        elif new == "paused":
            kind = "workflow.paused"
        elif old == "paused":
            kind = "workflow.resumed"
        elif new in _FINAL_EVENTS:
            kind = _FINAL_EVENTS[new]
        else:
            return
        row = self.db.execute("SELECT seq, output, error_name, error_message FROM instances WHERE workflow = ? "
                              "AND id = ?", (workflow, instance_id)).fetchone()
        if row is None:
            return
        if new == "complete":
            self.events.emit(row[0], kind, self.clock.now(), output=row[1] if row[1] is not None else b"\xc0")
        elif new == "errored":
            self.events.emit(row[0], kind, self.clock.now(), error={"name": row[2], "message": row[3] or ""})
        else:
            self.events.emit(row[0], kind, self.clock.now())

    # -- watchers (test handles wait on these instead of polling) -------------------------------
    def notify(self, workflow: str, instance_id: str) -> None:
        event = self.watchers.pop((workflow, instance_id), None)
        if event is not None:
            event.set()

    async def wait_change(self, workflow: str, instance_id: str, timeout: float) -> None:
        """Return after the instance's status or history changes next (or the timeout)."""
        key = (workflow, instance_id)
        event = self.watchers.get(key)
        if event is None:
            event = self.watchers[key] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
