"""Worker side of Workflows: the ``env.MY_WORKFLOW`` binding and the ``run`` dispatch.

A running session records its steps with ``runtime.call_host("workflows", ...)``: the
Worker that runs a workflow class may have no binding for its own workflow (see the
plug-in's ``handle_isolate_call``).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import traceback
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import codec, local, rules
from edgelet.bindings.workflows.codec import AttrDict, attrs
from edgelet.bindings.workflows.entrypoint import WorkflowEntrypoint
from edgelet.bindings.workflows.step import KIND_WORDS, RunSession, WorkflowStep, error_info

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

SDK_EXPORTS = {"WorkflowEntrypoint": WorkflowEntrypoint}
ENTRYPOINT_BASES = (WorkflowEntrypoint,)

#: the sessions running in this isolate, so the host can signal pause/cancel to one
RUNS: dict[tuple[str, str], RunSession] = {}


class WorkflowInstance:
    """One instance, as ``create``/``get`` return it."""

    def __init__(self, binding: WorkflowBinding, instance_id: str) -> None:
        self._binding = binding
        self.id = instance_id

    async def _op(self, method: str, *args: Any) -> Any:
        return await self._binding._call(method, self.id, *args)

    async def status(self) -> AttrDict:
        """``{status, error: {name, message} | None, output}``."""
        writer = local.LOCAL
        info = None
        if writer is not None:
            # read from the file this isolate shares with the host (local.py); a loop turn
            # first, as a call to the host would take, so a Worker polling without a sleep
            # still lets the run it waits for (often in this isolate) go on
            await asyncio.sleep(0)
            info = writer.status(self._binding._workflow, self.id)
        if info is None:
            info = await self._op("status")
        out = {"status": info["status"], "error": info["error"], "output": codec.decode(info["output"])}
        if info.get("rollback") is not None:
            out["rollback"] = info["rollback"]
        return attrs(out)

    async def pause(self) -> None:
        await self._op("pause")

    async def resume(self) -> None:
        await self._op("resume")

    async def terminate(self) -> None:
        await self._op("terminate")

    async def restart(self, from_step: str | None = None, **options: Any) -> None:
        """Erase the history (or the part from ``from_step`` on) and run from the top."""
        await self._op("restart", rules.restart_from(from_step, options))

    async def sendEvent(self, type: Any = None, payload: Any = None) -> None:  # noqa: N802,A002
        """Deliver an event for ``step.wait_for_event``; also ``sendEvent({"type", "payload"})``."""
        if isinstance(type, dict) and payload is None:
            type, payload = type.get("type"), type.get("payload")
        rules.check_event_type(type)
        data = codec.encode(payload, what=f"the payload of event '{type}'")
        await self._op("send_event", type, data)

    send_event = sendEvent

    async def delete(self) -> None:
        """Remove this finished instance and its history (a live one raises RuntimeError)."""
        await self._op("delete")

    def subscribe(self, filter: Any = None, cursor: Any = None) -> Subscription:  # noqa: A002
        """``async for event in inst.subscribe():`` the retained events, then live ones, until
        the instance completes, errors or is terminated. ``filter``: event types (or families
        such as "step"); ``cursor``: an ``eventId`` to resume after."""
        return Subscription(self, filter, cursor)

    def __repr__(self) -> str:
        return f"<WorkflowInstance {self.id}>"


class Subscription:
    """An async iterator over an instance's events, fetched a page at a time from the host
    (each fetch waits up to ``POLL_WAIT_S`` for the next event)."""

    POLL_WAIT_S = 25.0

    def __init__(self, instance: WorkflowInstance, filter: Any, cursor: Any) -> None:  # noqa: A002
        self._instance = instance
        self._filter = list(filter) if isinstance(filter, (list, tuple)) else filter
        self._cursor = cursor
        self._first = True
        self._page: list[AttrDict] = []
        self._done = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> AttrDict:
        while not self._page:
            if self._done:
                raise StopAsyncIteration
            answer = await self._instance._op("subscribe_poll", self._filter, self._cursor, self.POLL_WAIT_S,
                                              self._first)
            self._first = False
            self._cursor = answer["last"]
            self._done = answer["done"]
            self._page = [attrs(e) for e in answer["events"]]
        return self._page.pop(0)

    async def next(self) -> AttrDict:
        """Cloudflare's spelling: the next event (StopAsyncIteration once the instance ended)."""
        return await self.__anext__()


class WorkflowBinding:
    """``env.<binding>``: create and look up instances of one workflow."""

    def __init__(self, name: str, options: dict[str, Any], runtime: IsolateServices) -> None:
        self._name = name
        self._workflow = options.get("workflow", name)
        self._runtime = runtime

    async def _call(self, method: str, *args: Any) -> Any:
        return await self._runtime.call("workflows", self._name, method, *args)

    async def create(self, id: Any = None, params: Any = None, **options: Any) -> WorkflowInstance:  # noqa: A002
        """Start an instance: ``create(id=None, params=None)`` or ``create({"id", "params"})``."""
        instance_id, data = _options(id, params, options)
        created = await self._call("create", instance_id, data)
        return WorkflowInstance(self, created["id"])

    async def createBatch(self, batch: Any) -> Any:  # noqa: N802
        """Up to 100 instances at once. A list: all or none, returns the instances.
        ``{"count": n, "params": p}`` or ``{"instances": [...]}``: each entry on its own,
        returns ``{created: [instances], errors: [{index, error}]}``."""
        if isinstance(batch, dict):
            items, errors = batch_items(self._name, batch)
            result = await self._call("create_many", items, errors)
            return attrs({"created": [WorkflowInstance(self, i) for i in result["created"]],
                          "errors": result["errors"]})
        if not isinstance(batch, (list, tuple)):
            raise TypeError(f"createBatch takes a list of {{'id', 'params'}} dicts, got {type(batch).__name__}")
        items = []
        for entry in batch:
            if entry is None:
                entry = {}
            if not isinstance(entry, dict):
                raise TypeError(f"createBatch entries must be dicts with 'id' and/or 'params', got "
                                f"{type(entry).__name__}")
            items.append(list(_options(None, None, dict(entry))))
        created = await self._call("create_batch", items)
        return [WorkflowInstance(self, c["id"]) for c in created]

    create_batch = createBatch

    async def deleteBatch(self, ids: Any) -> int:  # noqa: N802
        """Remove up to 100 finished instances (all or none); returns how many."""
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"deleteBatch on workflow binding {self._name}: takes a list of instance ids, "
                            f"got {type(ids).__name__}")
        return int(await self._call("delete_batch", [getattr(i, "id", i) for i in ids]))

    delete_batch = deleteBatch

    async def get(self, id: str) -> WorkflowInstance:  # noqa: A002
        """The instance with this id; raises LookupError when there is none."""
        await self._call("get", id)
        return WorkflowInstance(self, id)

    def __repr__(self) -> str:
        return f"<workflow binding {self._name} -> {self._workflow}>"


def _options(instance_id: Any, params: Any, options: dict[str, Any]) -> tuple[str | None, bytes | None]:
    if isinstance(instance_id, dict) and params is None:
        options = {**instance_id, **options}
        instance_id = None
    instance_id = options.pop("id", instance_id)
    params = options.pop("params", params)
    options.pop("retention", None)
    if options:
        raise TypeError(f"create() got unknown option(s) {sorted(options)}; use id and params")
    if instance_id is not None:
        rules.check_instance_id(instance_id)
    return instance_id, codec.encode(params, what="the instance params")


def batch_items(where: str, batch: dict[str, Any]) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The entries of an object-form createBatch, and the ones rejected here (by index)."""
    unknown = set(batch) - {"count", "params", "instances"}
    if unknown or ("count" in batch) == ("instances" in batch):
        raise TypeError(f"createBatch on workflow {where}: pass {{'count': n, 'params': p}} or "
                        f"{{'instances': [{{'id', 'params'}}, ...]}} (got keys {sorted(batch)})")
    if "count" in batch:
        count = batch["count"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= rules.MAX_BATCH:
            raise ValueError(f"createBatch on workflow {where}: count must be a whole number from 1 to "
                             f"{rules.MAX_BATCH}, got {count!r}")
        data = codec.encode(batch.get("params"), what="the instance params")
        return [[None, data] for _ in range(count)], []
    entries = batch["instances"]
    if not isinstance(entries, (list, tuple)):
        raise TypeError(f"createBatch on workflow {where}: instances must be a list, got {type(entries).__name__}")
    items: list[list[Any]] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        try:
            if entry is not None and not isinstance(entry, dict):
                raise TypeError(f"expected a dict with 'id' and/or 'params', got {type(entry).__name__}")
            items.append(list(_options(None, None, dict(entry or {}))))
        except (TypeError, ValueError) as exc:
            items.append([None, None])
            errors.append({"index": index, "error": str(exc)})
    return items, errors


def setup(runtime: IsolateServices, options: dict[str, Any]) -> None:
    """This isolate runs workflows: ``database`` names the file it commits finished steps
    to itself (``local.py``), or is None when the host records everything."""
    local.configure(runtime, options.get("database"))


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> Any:
    return WorkflowBinding(name, options, runtime)


async def handle_event(runtime: IsolateServices, event: str, payload: Any) -> Any:
    """``workflows.run``: run an instance against its history; ``workflows.signal``: pause/cancel."""
    if event == "run":
        return await run_instance(runtime, payload)
    if event == "check":
        return await check_instances(runtime, payload)
    if event == "signal":
        session = RUNS.get((payload["workflow"], payload["id"]))
        if session is not None and session.generation == payload["generation"]:
            signal = payload["signal"]
            if signal == "pause":
                session.pausing = True
            elif signal == "unpause":
                session.pausing = False
            elif signal == "cancel":
                session.abandon()
            elif signal == "timeout":
                session.time_out(payload["step"], payload["count"], payload["attempt"])
        return None
    raise LookupError(f"unknown workflows event {event!r}")


async def run_instance(runtime: IsolateServices, payload: dict[str, Any]) -> dict[str, Any]:
    """Call the user's ``run(event, step)`` and report complete / errored / suspended, with
    the notes of the steps this isolate committed that the host has not been told of yet
    (``recorded``: taken as the outcome is written, so nothing of this run comes after).
    A ``complete`` outcome is committed here when the isolate holds the file (``committed``;
    see ``local.py``)."""
    session = RunSession(runtime, payload)
    outcome = await _run(runtime, session, payload)
    writer = session.local
    if writer is not None:
        if outcome.get("outcome") == "complete" and writer.usable():
            committed = await writer.complete(session.workflow, session.instance, session.generation,
                                              outcome.get("output"))
            if committed is not None:
                outcome["committed"] = committed  # the host only does what follows it
        notes = writer.take(session.workflow, session.instance)
        if notes:
            outcome["recorded"] = notes
    return outcome


async def _run(runtime: IsolateServices, session: RunSession, payload: dict[str, Any]) -> dict[str, Any]:
    from edgelet.runtime.entrypoints import call_handler

    key = (session.workflow, session.instance)
    cls = runtime.classes().get(payload["class"])
    if cls is None or not callable(getattr(cls, "run", None)):
        return {"outcome": "errored", "error": {
            "name": "LookupError",
            "message": f"Worker {runtime.worker!r} has no workflow class {payload['class']!r} with a run "
                       f"method; define `class {payload['class']}(WorkflowEntrypoint)` with "
                       f"`async def run(self, event, step)`"}}
    event = attrs({"payload": codec.decode(payload.get("params")),
                   "timestamp": _dt.datetime.fromtimestamp(payload["timestamp"], tz=_dt.UTC),
                   "instanceId": session.instance, "workflowName": session.workflow})
    RUNS[key] = session
    task: asyncio.Task[Any] | None = None
    writer = session.local
    if writer is not None:
        writer.started()
    try:
        entry = cls(runtime.new_context(), runtime.env)
        task = asyncio.ensure_future(call_handler(entry.run, event, WorkflowStep(session)))
        session.task = task
        await asyncio.wait([task])
        error = _failure(session, task)
        if error is not None and session.compensations:
            # the saga half: undo completed steps (each recorded; a suspended retry replays later)
            session.waits = []
            rollback = asyncio.ensure_future(session.roll_back(error))
            session.task = rollback
            await asyncio.wait([rollback])
            if session.stale:
                return {"outcome": "stale", "touched": sorted(session.touched)}
            if rollback.cancelled():
                return {"outcome": "suspended", "waits": session.waits, "touched": sorted(session.touched)}
            if rollback.exception() is not None:
                runtime.log("error", f"Workflow {session.workflow} instance {session.instance}: rollbacks "
                                     f"failed: {rollback.exception()!r}")
        return _outcome(runtime, session, task)
    finally:
        if task is not None and not task.done():  # the host gave up on this dispatch
            task.cancel()
        for leftover in list(session.tasks):
            leftover.cancel()
        if writer is not None:
            writer.runs -= 1
        if RUNS.get(key) is session:
            del RUNS[key]


#: how long the replay check of one instance may take (code between steps may await things)
CHECK_TIMEOUT_S = 10.0
#: instances checked at once in one isolate
CHECK_CONCURRENCY = 256


async def check_instances(runtime: IsolateServices, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """``workflows.check``: replay each instance's history against the current code without
    running or recording a step; report ``ok`` with the next step, or the divergence."""
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            return await check_instance(runtime, {**item, "check": True})

    return list(await asyncio.gather(*(one(i) for i in payload["instances"])))


async def check_instance(runtime: IsolateServices, payload: dict[str, Any]) -> dict[str, Any]:
    from edgelet.runtime.entrypoints import call_handler

    session = RunSession(runtime, payload)
    report: dict[str, Any] = {"id": session.instance, "ok": True, "next": None, "outcome": "waiting",
                              "error": None}
    cls = runtime.classes().get(payload["class"])
    if cls is None or not callable(getattr(cls, "run", None)):
        return {**report, "ok": False, "outcome": "errored",
                "error": f"Worker {runtime.worker!r} has no workflow class {payload['class']!r} with a run method"}
    event = attrs({"payload": codec.decode(payload.get("params")),
                   "timestamp": _dt.datetime.fromtimestamp(payload["timestamp"], tz=_dt.UTC),
                   "instanceId": session.instance, "workflowName": session.workflow})
    task = asyncio.ensure_future(call_handler(cls(runtime.new_context(), runtime.env).run, event,
                                              WorkflowStep(session)))
    session.task = task
    try:
        done, _ = await asyncio.wait([task], timeout=CHECK_TIMEOUT_S)
        if not done:
            return {**report, "ok": False, "outcome": "unknown",
                    "error": f"the replay did not reach a step within {CHECK_TIMEOUT_S:g} s (code between "
                             f"steps awaits something slow); check this instance by hand"}
    finally:
        if not task.done():
            task.cancel()
        for leftover in list(session.tasks):
            leftover.cancel()
    if session.failure is not None:
        name, message = error_info(session.failure)
        if name == "NonDeterminismError":
            return {**report, "ok": False, "outcome": "errored", "error": message}
        return {**report, "outcome": "errored", "error": f"{name}: {message}"}
    if task.cancelled():
        return {**report, "next": session.next_step}
    exc = task.exception()
    if exc is not None:
        report = {**report, "outcome": "errored", "error": "{}: {}".format(*error_info(exc))}
    else:
        report = {**report, "outcome": "complete"}
    missing = [k for k in session.order if k not in session.reached]
    if missing:
        rec = session.history[missing[0]]
        ending = "complete" if exc is None else f"fail ({report['error']})"
        return {**report, "ok": False, "outcome": "errored",
                "error": f"replay of instance '{session.instance}' diverged from its stored history: "
                         f"{KIND_WORDS.get(rec.kind, rec.kind)} '{rec.name}' #{rec.count} (recorded) "
                         f"is not reached again: run() would {ending} without it"}
    return report


def _failure(session: RunSession, task: asyncio.Task[Any]) -> BaseException | None:
    """The error that fails the instance and so triggers rollbacks (never a code change:
    a non-determinism error means the history no longer matches, so nothing is undone)."""
    if session.failure is not None:
        return None if type(session.failure).__name__ == "NonDeterminismError" else session.failure
    if session.stale or task.cancelled():
        return None
    return task.exception()


def _outcome(runtime: IsolateServices, session: RunSession, task: asyncio.Task[Any]) -> dict[str, Any]:
    touched = sorted(session.touched)
    if session.failure is not None:
        name, message = error_info(session.failure)
        return {"outcome": "errored", "error": {"name": name, "message": message}, "touched": touched}
    if session.stale:
        return {"outcome": "stale", "touched": touched}
    if task.cancelled():
        return {"outcome": "suspended", "waits": session.waits, "touched": touched}
    exc = task.exception()
    if exc is not None:
        name, message = error_info(exc)
        runtime.log("error", f"Workflow {session.workflow} instance {session.instance} failed: "
                             f"{name}: {message}\n{''.join(traceback.format_exception(exc))}")
        return {"outcome": "errored", "error": {"name": name, "message": message}, "touched": touched}
    try:
        output = codec.encode(task.result(), what="the value returned by run()")
    except (TypeError, ValueError) as error:
        return {"outcome": "errored", "error": {"name": type(error).__name__, "message": str(error)},
                "touched": touched}
    return {"outcome": "complete", "output": output, "touched": touched}
