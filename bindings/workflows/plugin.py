"""Host side of Workflows: bindings, step records from the isolate half, control API, CLI,
test hooks.

Routing of step records: the Worker that runs a workflow class may have no binding for its
own workflow, so a running session records steps with ``runtime.call_host("workflows",
...)`` (not through ``env``), and ``handle_isolate_call`` checks that the calling Worker is
the one that runs that workflow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.workflows.engine import Engine, WorkflowDef
from edgelet.channel import NOT_NOW, Later

if TYPE_CHECKING:  # pragma: no cover
    import click
    from starlette.routing import BaseRoute

    from edgelet.bindings.workflows.handle import WorkflowHandle, WorkflowMocks
    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices

log = logging.getLogger("edgelet.workflows")


def workflow_defs(config: PlatformConfig) -> dict[str, WorkflowDef]:
    """Workflow name -> where it runs; config validation already made each name one class."""
    defs: dict[str, WorkflowDef] = {}
    for worker in config.workers:
        for decl in worker.decls("workflows"):
            d = defs.get(decl.name)
            if d is None:
                defs[decl.name] = WorkflowDef(decl.name, decl.class_name, decl.script_name or worker.name,
                                              decl.concurrency, list(decl.schedules), decl.max_steps,
                                              decl.retention_s)
            else:  # several Workers bind it: the tightest limit wins, schedules add up once
                d.concurrency = min(d.concurrency, decl.concurrency)
                d.max_steps = min(d.max_steps, decl.max_steps)
                d.retention_s = min(d.retention_s, decl.retention_s)
                d.schedules.extend(s for s in decl.schedules if s not in d.schedules)
    return defs


class Plugin(BindingPlugin):
    kind = "workflows"

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        #: (worker, binding) -> workflow name
        self.bindings: dict[tuple[str, str], str] = {}
        #: workflow name -> test mocks (created on demand, shipped with each dispatch)
        self._mocks: dict[str, WorkflowMocks] = {}
        #: workflow name -> the script that runs it
        self._defs: dict[str, WorkflowDef] = {}

    def configure(self, config: PlatformConfig) -> None:
        self.bindings = {(w.name, d.binding): d.name for w in config.workers for d in w.decls(self.kind)}
        self._defs = workflow_defs(config)

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        return {decl.binding: {"workflow": decl.name} for decl in worker.decls(self.kind)}

    def isolate_options(self, worker: WorkerConfig) -> dict[str, Any] | None:
        """Workers that run a workflow class record its steps, and Workers with a binding
        read ``status()``; ``database``: the file their isolate commits finished steps to
        and reads statuses from itself (``local.py``), when the state is on disk and the
        clock is real (a virtual clock times attempts out on host timers)."""
        if not any(d.script == worker.name for d in self._defs.values()) and not worker.decls(self.kind):
            return None
        host = self.host
        if host is None or host.state_dir is None or getattr(host.clock, "virtual", False):
            return {"database": None}
        from edgelet.bindings.workflows import schema
        from edgelet.state import database_path
        return {"database": str(database_path(host.state_dir, schema.DATABASE))}

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self, host: HostServices) -> None:
        await super().start(host)
        self.engine = Engine(host, self._defs, self._mocks)

    async def after_start(self) -> None:
        """Isolates are up: resume interrupted instances and arm the timers."""
        assert self.engine is not None
        self.engine.start()

    async def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    async def after_reload(self, worker: str) -> None:
        """A script changed: replay its workflows' unfinished instances and warn about each
        one the new code would break (``edgelet dev`` only reloads)."""
        if self.engine is not None and any(d.script == worker for d in self.engine.defs.values()):
            await self.engine.check_after_reload(worker)

    # -- calls from Workers ------------------------------------------------------------------
    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        engine = self._engine()
        workflow = self.bindings.get((worker, binding))
        if workflow is None:
            return await super().handle_call(worker, binding, method, args)
        if method == "create":
            instance_id, params = args
            return (await engine.create_batch_grouped(workflow, [(instance_id, params)], trigger="binding"))[0]
        if method == "create_batch":
            return await engine.create_batch_grouped(workflow, [(i, p) for i, p in args[0]], trigger="binding")
        if method == "create_many":
            items, errors = args
            return engine.create_many(workflow, [(i, p) for i, p in items], trigger="binding", errors=errors)
        if method == "delete":
            engine.delete(workflow, args[0])
            return None
        if method == "delete_batch":
            return engine.delete_batch(workflow, args[0])
        if method == "subscribe_poll":
            return await engine.subscribe_poll(workflow, *args)
        if method == "get":
            return engine.exists(workflow, args[0])
        if method == "status":
            return engine.status(workflow, args[0])
        if method in ("pause", "resume", "terminate"):
            getattr(engine, method)(workflow, args[0])
            return None
        if method == "restart":
            engine.restart(workflow, args[0], args[1] if len(args) > 1 else None)
            return None
        if method == "send_event":
            instance_id, event_type, payload = args
            engine.send_event(workflow, instance_id, event_type, payload)
            return None
        return await super().handle_call(worker, binding, method, args)

    async def handle_isolate_call(self, worker: str, method: str, args: list[Any]) -> Any:
        """Step records from a running session; only the Worker that runs the workflow may."""
        engine = self._engine()
        payload = args[0]
        if method == "recorded":  # steps the isolate committed itself, told afterwards
            self._recorded(engine, worker, args[0])
            return None
        d = engine.defs.get(payload[0])
        if d is None or d.script != worker:
            raise PermissionError(f"Worker {worker!r} does not run workflow {payload[0]!r}")
        if len(args) > 1:  # notes of steps committed before this record, riding with it
            self._recorded(engine, worker, args[1])
        handler = {"step_done": engine.step_done, "step_retry": engine.step_retry,
                   "sleep": engine.sleep, "wait_event": engine.wait_event,
                   "rollback_done": engine.rollback_done, "rollback_retry": engine.rollback_retry,
                   "attempt_started": engine.attempt_started, "attempt_timer": engine.attempt_timer}.get(method)
        if handler is None:
            raise LookupError(f"unknown internal workflows call {method!r}")
        return await handler(payload)

    def isolate_call_now(self, worker: str, method: str, args: list[Any]) -> Any:
        """``step_done`` (the per-step record when the host commits it) and ``recorded``
        (notes of steps the isolate committed), answered on the channel's own read:
        ``step_done``'s write joins the group commit, which the channel runs once it has
        read every message of that read, and the answer leaves with the others (no task,
        no extra loop turn). Everything else, and a Worker that may not record, takes the
        async path."""
        engine = self.engine
        if engine is None or method not in ("step_done", "recorded"):
            return NOT_NOW
        if method == "recorded":
            self._recorded(engine, worker, args[0])
            return None
        d = engine.defs.get(args[0][0])
        if d is None or d.script != worker:
            return NOT_NOW  # handle_isolate_call refuses it, with the reason
        if len(args) > 1:
            self._recorded(engine, worker, args[1])
        answer = Later(engine.state.group.flush)
        engine.recorder.step_done_later(args[0], answer)
        return answer

    @staticmethod
    def _recorded(engine: Engine, worker: str, notes: list[Any]) -> None:
        """Apply notes of committed steps (events, log lines, watchers), each only for a
        workflow this Worker runs: they are its own records, told after its commit."""
        mine = [n for n in notes if (d := engine.defs.get(n[0][0])) is not None and d.script == worker]
        if len(mine) != len(notes):
            log.warning("Worker %r sent notes of steps of workflows it does not run; ignored", worker)
        engine.recorder.apply_recorded(mine)

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the workflows plug-in is not started; start the platform first")
        return self.engine

    # -- control API and CLI --------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        from edgelet.bindings.workflows.routes import build_routes
        return build_routes(self)

    def cli(self) -> click.Group | None:
        from edgelet.bindings.workflows.cli import workflows_group
        return workflows_group

    # -- edgelet.testing hooks ------------------------------------------------------------------
    def workflow_handle(self, worker: str, binding: str) -> WorkflowHandle:
        """The binding ``binding`` of Worker ``worker``, driven from the host process."""
        from edgelet.bindings.workflows.handle import WorkflowHandle
        engine = self._engine()
        workflow = self.bindings.get((worker, binding))
        if workflow is None:
            if binding in engine.defs:  # a workflow name works as well
                workflow = binding
            else:
                known = ", ".join(f"{w}.{b}" for w, b in sorted(self.bindings)) or "none"
                raise LookupError(f"Worker {worker!r} has no workflow binding {binding!r}; workflow "
                                  f"bindings: {known}. Add it under workflows in the Worker's config.")
        return WorkflowHandle(engine, workflow)

    def mocks(self, workflow: str) -> WorkflowMocks:
        """Test mocks for one workflow, applied to every dispatch from now on."""
        from edgelet.bindings.workflows.handle import WorkflowMocks
        if self.engine is not None and workflow not in self.engine.defs:
            known = ", ".join(sorted(self.engine.defs)) or "none"
            raise LookupError(f"unknown workflow '{workflow}'; workflows: {known}")
        mocks = self._mocks.get(workflow)
        if mocks is None:
            mocks = self._mocks[workflow] = WorkflowMocks(workflow)
        return mocks
