"""Host-side handles for tests (``edgelet.testing``): the binding from outside, and mocks.

Handles call the engine directly (same process as the host), so a test drives a workflow
exactly as a Worker would, plus what only a test needs: wait for a status or a step
without polling (the engine wakes waiters on every status change and step record), read
the history, and mock steps, events, sleeps and retry delays per workflow.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import codec, rules
from edgelet.bindings.workflows.codec import AttrDict, attrs
from edgelet.bindings.workflows.schema import FINISHED, STATUSES

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.workflows.engine import Engine


class WorkflowStepFailed(Exception):
    """``wait_for_step`` found the step failed; ``name``/``message`` are the step's error."""

    def __init__(self, name: str, message: str, step: str) -> None:
        super().__init__(f"step '{step}' failed: {name}: {message}")
        self.name = name
        self.message = message


class WorkflowHandle:
    """The binding, from the host process: ``create``, ``createBatch``, ``get``, ``instances``."""

    def __init__(self, engine: Engine, workflow: str) -> None:
        self._engine = engine
        self.workflow = workflow

    async def create(self, id: Any = None, params: Any = None, **options: Any) -> InstanceHandle:  # noqa: A002
        if isinstance(id, dict) and params is None:
            options = {**id, **options}
            id = None  # noqa: A001
        instance_id = options.pop("id", id)
        params = options.pop("params", params)
        data = codec.encode(params, what="the instance params")
        created = self._engine.create(self.workflow, instance_id, data, trigger="test")
        return InstanceHandle(self._engine, self.workflow, created["id"])

    async def createBatch(self, batch: Any) -> Any:  # noqa: N802
        if isinstance(batch, dict):  # object forms: {created, errors}, each entry on its own
            from edgelet.bindings.workflows.isolate import batch_items
            raw, errors = batch_items(f"'{self.workflow}'", batch)
            result = self._engine.create_many(self.workflow, [(i, p) for i, p in raw], trigger="test",
                                              errors=errors)
            return attrs({"created": [InstanceHandle(self._engine, self.workflow, i) for i in result["created"]],
                          "errors": result["errors"]})
        items = []
        for entry in batch:
            entry = entry or {}
            items.append((entry.get("id"), codec.encode(entry.get("params"), what="the instance params")))
        created = self._engine.create_batch(self.workflow, items, trigger="test")
        return [InstanceHandle(self._engine, self.workflow, c["id"]) for c in created]

    create_batch = createBatch

    async def deleteBatch(self, ids: list[Any]) -> int:  # noqa: N802
        """Remove up to 100 finished instances (all or none)."""
        return self._engine.delete_batch(self.workflow, [getattr(i, "id", i) for i in ids])

    delete_batch = deleteBatch

    async def get(self, id: str) -> InstanceHandle:  # noqa: A002
        self._engine.exists(self.workflow, id)
        return InstanceHandle(self._engine, self.workflow, id)

    async def instances(self, status: str | None = None) -> list[InstanceHandle]:
        """Every instance (newest first), or those with ``status``."""
        out: list[InstanceHandle] = []
        page = 1
        while True:
            rows, info = self._engine.list(self.workflow, status, page, 1000)
            out.extend(InstanceHandle(self._engine, self.workflow, r["id"]) for r in rows)
            if page * 1000 >= info["total_count"]:
                return out
            page += 1

    async def check(self) -> AttrDict:
        """Replay every unfinished instance against the current code (no step runs):
        ``{workflow, checked, diverged, instances: [{id, status, ok, next, outcome, error}]}``."""
        return attrs(await self._engine.check(self.workflow))

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.workflow}>"


class InstanceHandle:
    """One instance: the Worker API plus waits and history for assertions."""

    def __init__(self, engine: Engine, workflow: str, instance_id: str) -> None:
        self._engine = engine
        self.workflow = workflow
        self.id = instance_id

    async def status(self) -> AttrDict:
        info = self._engine.status(self.workflow, self.id)
        out = {"status": info["status"], "error": info["error"], "output": codec.decode(info["output"])}
        if info.get("rollback") is not None:
            out["rollback"] = info["rollback"]
        return attrs(out)

    async def pause(self) -> None:
        self._engine.pause(self.workflow, self.id)

    async def resume(self) -> None:
        self._engine.resume(self.workflow, self.id)

    async def terminate(self) -> None:
        self._engine.terminate(self.workflow, self.id)

    async def restart(self, from_step: str | None = None, **options: Any) -> None:
        self._engine.restart(self.workflow, self.id, rules.restart_from(from_step, options))

    async def sendEvent(self, type: Any = None, payload: Any = None) -> None:  # noqa: N802,A002
        if isinstance(type, dict) and payload is None:
            type, payload = type.get("type"), type.get("payload")
        rules.check_event_type(type)
        self._engine.send_event(self.workflow, self.id, type,
                                codec.encode(payload, what=f"the payload of event '{type}'"))

    send_event = sendEvent

    async def delete(self) -> None:
        self._engine.delete(self.workflow, self.id)

    async def output(self) -> Any:
        return (await self.status())["output"]

    async def error(self) -> AttrDict | None:
        return (await self.status())["error"]

    async def steps(self) -> list[AttrDict]:
        """The history as ``describe`` shows it (type, name, count, times, attempts, output)."""
        return attrs(self._engine.describe(self.workflow, self.id)["steps"])

    async def describe(self) -> AttrDict:
        return attrs(self._engine.describe(self.workflow, self.id))

    def subscribe(self, filter: Any = None, cursor: Any = None) -> Any:  # noqa: A002
        """``async for event in inst.subscribe(...)``: retained events, then live ones."""
        return self._engine.subscribe(self.workflow, self.id, filter, cursor)

    async def export(self) -> dict[str, Any]:
        """The recorded history as JSON (save it; ``p.replay(history)`` checks it later)."""
        return self._engine.export(self.workflow, self.id)

    async def wait_for_status(self, status: str, timeout: float = 30) -> AttrDict:
        """Wait until the instance has ``status``; fail fast (with its error) when it reaches a
        different final status instead."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        deadline = time.monotonic() + timeout
        while True:
            info = await self.status()
            # an isolate may commit its run's completion itself (local.py): wait for the host
            # to have done what follows it too (events, mocks reached), as a test expects
            settled = info["status"] not in FINISHED or self.id not in self._engine.state.running.get(self.workflow, ())
            if info["status"] == status and settled:
                return info
            if info["status"] in FINISHED and settled:
                error = info["error"]
                detail = f": {error['name']}: {error['message']}" if error else ""
                raise AssertionError(f"instance '{self.id}' of workflow '{self.workflow}' is "
                                     f"{info['status']}{detail}; it will never be {status}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"instance '{self.id}' of workflow '{self.workflow}' is still "
                                   f"{info['status']} after {timeout:g} s (waiting for {status}); "
                                   f"with virtual time, advance the clock")
            await self._engine.wait_change(self.workflow, self.id, remaining)

    async def wait_for_step(self, name: str, count: int = 1, timeout: float = 30) -> Any:
        """The result of step ``name`` (occurrence ``count``) once recorded; raises its error."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self._engine.describe(self.workflow, self.id)["steps"]:
                if entry.get("name") != name or entry.get("count") != count or not entry.get("finished"):
                    continue
                if entry.get("success"):
                    return self._step_value(name, count)
                error = entry.get("error") or {}
                raise WorkflowStepFailed(error.get("name", "Error"), error.get("message", ""), name)
            info = self._engine.status(self.workflow, self.id)
            if info["status"] in FINISHED:
                raise AssertionError(f"instance '{self.id}' is {info['status']} and never recorded step "
                                     f"'{name}' #{count}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"step '{name}' #{count} of instance '{self.id}' not recorded after "
                                   f"{timeout:g} s (status {info['status']})")
            await self._engine.wait_change(self.workflow, self.id, remaining)

    def _step_value(self, name: str, count: int) -> Any:
        row = self._engine.db.execute(
            "SELECT s.value FROM steps s JOIN instances i ON i.seq = s.instance WHERE i.workflow = ? "
            "AND i.id = ? AND s.name = ? AND s.count = ?", (self.workflow, self.id, name, count)).fetchone()
        return attrs(codec.decode(row[0])) if row else None

    def __repr__(self) -> str:
        return f"<InstanceHandle {self.workflow}/{self.id}>"


class WorkflowMocks:
    """Per-workflow test mocks; shipped with every dispatch and applied inside the isolate.

    Set them before creating instances. ``unused()`` lists the mocks whose step (or event
    type) no run has reached, so a test can report a mock that never mattered.
    """

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.reached: set[str] = set()
        self.clear()

    def clear(self) -> None:
        self._results: list[list[Any]] = []
        self._errors: dict[str, dict[str, Any]] = {}
        self._timeouts: dict[str, int | None] = {}
        self._events: dict[str, bytes] = {}
        self._event_timeouts: set[str] = set()
        self._no_sleeps = False
        self._no_retry_delays = False
        self.reached = set()

    def mock_step_result(self, name: str, value: Any, count: int | None = None) -> None:
        """Step ``name`` returns ``value`` without running (only occurrence ``count`` if given)."""
        self._results.append([name, count, codec.encode(value, what=f"the mocked result of step '{name}'")])

    def mock_step_error(self, name: str, error: Any, times: int | None = None) -> None:
        """Attempts of step ``name`` raise ``error`` (an exception or a message); only the first
        ``times`` attempts when given, so retries can then succeed."""
        if isinstance(error, BaseException):
            spec = {"name": getattr(error, "error_name", None) or type(error).__name__, "message": str(error)}
        else:
            spec = {"name": "Error", "message": str(error)}
        self._errors[name] = {**spec, "name": spec["name"], "times": times, "step": name}

    def force_step_timeout(self, name: str, times: int | None = None) -> None:
        """Attempts of step ``name`` time out (the first ``times`` when given)."""
        self._timeouts[name] = times

    def mock_event(self, type: str, payload: Any = None) -> None:  # noqa: A002
        """``wait_for_event`` for ``type`` gets this payload at once."""
        rules.check_event_type(type)
        self._events[type] = codec.encode(payload, what=f"the mocked payload of event '{type}'")

    def force_event_timeout(self, name: str) -> None:
        """``wait_for_event`` step ``name`` times out at once."""
        self._event_timeouts.add(name)

    def disable_sleeps(self) -> None:
        self._no_sleeps = True

    def disable_retry_delays(self) -> None:
        self._no_retry_delays = True

    # camelCase aliases, as Cloudflare's introspection API spells them
    mockStepResult = mock_step_result  # noqa: N815
    mockStepError = mock_step_error  # noqa: N815
    forceStepTimeout = force_step_timeout  # noqa: N815
    mockEvent = mock_event  # noqa: N815
    forceEventTimeout = force_event_timeout  # noqa: N815
    disableSleeps = disable_sleeps  # noqa: N815
    disableRetryDelays = disable_retry_delays  # noqa: N815

    def unused(self) -> list[str]:
        """Mocks no run has reached yet: step names, and ``event:TYPE`` for mocked events."""
        names = {r[0] for r in self._results} | set(self._errors) | set(self._timeouts) | self._event_timeouts
        out = sorted(n for n in names if n not in self.reached)
        out += sorted(f"event:{t}" for t in self._events if f"event:{t}" not in self.reached)
        return out

    def payload(self) -> dict[str, Any] | None:
        """The data shipped with a dispatch (None when nothing is mocked)."""
        if not (self._results or self._errors or self._timeouts or self._events or self._event_timeouts
                or self._no_sleeps or self._no_retry_delays):
            return None
        return {"results": self._results, "errors": list(self._errors.values()),
                "timeouts": [[n, t] for n, t in self._timeouts.items()],
                "events": [[t, p] for t, p in self._events.items()],
                "event_timeouts": sorted(self._event_timeouts),
                "no_sleeps": self._no_sleeps, "no_retry_delays": self._no_retry_delays}
