"""The ``step`` object ``run(event, step)`` receives, and the replay session behind it.

One :class:`RunSession` lives for one dispatch. It holds the instance's whole history
(shipped with the dispatch, so replaying N steps costs no round trip) and answers every
step call from it when it can. A new step runs here, in the Worker, and its result is
recorded on the host (committed) before ``run`` sees it.

A branch that must wait (sleep, event, retry delay, pause) *suspends*: it records why and
awaits a future that never resolves. Once no branch is doing work and nothing moved for a
few loop turns, the session cancels ``run`` and reports the waits; the host turns the
instance into a row with a wake-up time. Waking replays ``run`` from the top.

Steps are keyed by (name, count): ``count`` numbers the calls with one name in call order,
across kinds, so a step whose kind changed between runs is detected.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as _dt
import inspect
import json
import time
import types
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import codec, local, rules, wire
from edgelet.bindings.workflows.codec import AttrDict, attrs
from edgelet.bindings.workflows.records import StaleRunError

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

#: the internal binding through which a running isolate records steps (see isolate.py)
#: loop turns without progress before the session declares every branch parked
QUIET_TURNS = 8
#: an attempt still running after this long is noted on the host (see attempts_in_flight)
IN_FLIGHT_NOTE_S = 0.05
#: how long an async ``retries.delay`` function may take (Miniflare allows 5 seconds)
DELAY_FN_TIMEOUT_S = 5.0
_CTX = object()
_DEFAULT = object()
#: most steps pass no config: resolve the defaults once
_DEFAULT_CONFIG = rules.step_config(None, "default")
_DEFAULT_CONFIG_JSON = json.dumps(_DEFAULT_CONFIG)


_DEFAULT_TIMEOUT_S = rules.duration_s(_DEFAULT_CONFIG["timeout"], "timeout")
#: parameters of step functions by code object: a step defined in a loop is a new function
#: each time, and inspect.signature per step was a sixth of the isolate's time per step
_PARAMS: dict[Any, list[inspect.Parameter]] = {}


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """``inspect.signature(fn)``'s parameters (TypeError/ValueError when it has none)."""
    code = getattr(fn, "__code__", None)
    if code is None or not isinstance(fn, types.FunctionType):
        return list(inspect.signature(fn).parameters.values())
    # what the plans read (names, kinds, whether a default exists) is fixed by these
    key = (code, len(fn.__defaults__ or ()), tuple(fn.__kwdefaults__ or ()))
    found = _PARAMS.get(key)
    if found is None:
        found = _PARAMS[key] = list(inspect.signature(fn).parameters.values())
        if len(_PARAMS) > 4096:  # code objects of a long-lived isolate: keep it bounded
            _PARAMS.clear()
    return found


def _sdk() -> Any:
    import workers.workflows as sdk  # provided inside every isolate
    return sdk


def error_info(exc: BaseException) -> tuple[str, str]:
    """(name, message) as ``status().error`` reports it."""
    name = getattr(exc, "error_name", None) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        message = str(exc.args[0])
    else:
        message = str(exc)
    return str(name), message


def is_non_retryable(exc: BaseException) -> bool:
    return type(exc).__name__ == "NonRetryableError" or isinstance(exc, _sdk().NonRetryableError)


#: the isolate's tick is never armed further ahead than this (a long attempt costs one tick
#: per _TICK_MAX_S)
_TICK_MAX_S = 1.0
#: an attempt due this close to a tick is served by it
_TICK_EARLY_S = 0.001


class _Watched:
    """A running attempt the isolate's tick watches (see :class:`_Ticker`)."""

    __slots__ = ("session", "name", "count", "attempt", "note_at", "deadline", "noted", "expired", "task",
                 "cancelling")

    def __init__(self, session: RunSession, name: str, count: int, attempt: int, note_at: float,
                 deadline: float, task: asyncio.Task[Any] | None) -> None:
        self.session = session
        self.name, self.count, self.attempt = name, count, attempt
        self.note_at, self.deadline = note_at, deadline
        self.noted = False
        #: the tick cancelled ``task`` because the deadline passed (the attempt times out)
        self.expired = False
        self.task = task
        #: ``task.cancelling()`` when the attempt started: a cancellation from elsewhere
        #: (the run's end) is told from the timeout's own, as ``asyncio.timeout`` does
        self.cancelling = task.cancelling() if task is not None else 0


class _Ticker:
    """One timer for every attempt running in this isolate: notes an attempt on the host
    after ``IN_FLIGHT_NOTE_S`` and times it out at its deadline.

    Why one per isolate rather than one per session, and no ``asyncio.timeout`` scope per
    attempt: with 1,000 instances running at once, each instance's next step comes long
    after its previous one, so a per-session tick had fired (finding nothing) between two
    steps and was armed again for every step (a uvloop timer made and fired per step), and
    entering and leaving a timeout scope cost as much again: together ~15 % of the
    isolate's time per step (py-spy, 1,000 × 10). Most attempts end within the loop turn
    they started in, before any tick; one tick per ``IN_FLIGHT_NOTE_S`` serves the rest.
    An attempt that times out has its task cancelled and the CancelledError turned into
    the timeout error where it was awaited (``RunSession._one_attempt``), as
    ``asyncio.timeout`` does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: set[_Watched] = set()
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at = 0.0

    def watch(self, session: RunSession, name: str, count: int, attempt: int, timeout: float) -> _Watched:
        loop = self.loop
        now = loop.time()
        watched = _Watched(session, name, count, attempt, now + IN_FLIGHT_NOTE_S, now + timeout,
                           asyncio.current_task(loop))
        self.watched.add(watched)
        when = watched.note_at if watched.note_at < watched.deadline else watched.deadline
        if self._tick is None or when < self._tick_at:
            self._arm(when)
        return watched

    def _arm(self, when: float) -> None:
        when = min(when, self.loop.time() + _TICK_MAX_S)
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = when
        self._tick = self.loop.call_at(when, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        if not self.watched:
            return
        now = self.loop.time() + _TICK_EARLY_S  # timers may fire a little early
        nearest = None
        for w in list(self.watched):
            if not w.noted and w.note_at <= now:
                w.noted = True
                w.session._note_in_flight(w.name, w.count, w.attempt)
            if w.deadline <= now:
                self.watched.discard(w)
                if w.task is not None and not w.task.done():
                    w.expired = True
                    w.task.cancel()  # the attempt times out where it is awaited
                continue
            due = w.deadline if w.noted else min(w.note_at, w.deadline)
            nearest = due if nearest is None else min(nearest, due)
        if nearest is not None:
            self._arm(nearest)


#: this isolate's ticker (one event loop per isolate; a new loop, in tests, gets a new one)
_TICKER: _Ticker | None = None


def _ticker(loop: asyncio.AbstractEventLoop) -> _Ticker:
    global _TICKER
    ticker = _TICKER
    if ticker is None or ticker.loop is not loop:
        ticker = _TICKER = _Ticker(loop)
    return ticker


class _Unstorable(Exception):
    """A result that cannot be stored: failing again would not help, so no retry."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class Record:
    """One history entry as shipped by the host."""

    __slots__ = ("kind", "name", "count", "state", "value", "error_name", "error_message",
                 "wake_at", "due", "attempts")

    def __init__(self, row: list[Any]) -> None:
        (self.kind, self.name, self.count, self.state, self.value, self.error_name,
         self.error_message, self.wake_at, self.due, self.attempts) = row


KIND_WORDS = {"step": "step.do", "sleep": "step.sleep", "waitForEvent": "step.wait_for_event"}


class RunSession:
    """Replays one instance's history for one dispatch and records what is new."""

    def __init__(self, runtime: IsolateServices, payload: dict[str, Any]) -> None:
        self.runtime = runtime
        self.workflow: str = payload["workflow"]
        self.instance: str = payload["id"]
        self.generation: int = payload["generation"]
        self.history: dict[tuple[str, int], Record] = {}
        self.order: list[tuple[str, int]] = []
        for row in payload.get("history") or []:
            rec = Record(row)
            self.history[(rec.name, rec.count)] = rec
            self.order.append((rec.name, rec.count))
        self.reached: set[tuple[str, int]] = set()
        #: rollbacks recorded so far: (step name, count) -> [state, wake_at, due, attempts]
        self.rolled: dict[tuple[str, int], list[Any]] = {
            (r[0], r[1]): r[2:] for r in payload.get("rollbacks") or []}
        #: completed steps with a rollback: (start order, key, fn, config, output)
        self.compensations: list[tuple[int, tuple[str, int], Callable[..., Any], dict[str, Any], Any]] = []
        self.counters: dict[str, int] = {}
        #: ``limits.steps`` of the workflow, and the step calls made so far (every kind)
        self.max_steps: int = int(payload.get("max_steps") or 10_000)
        self.calls = 0
        self.mocks = Mocks(payload.get("mocks"))
        self.touched: set[str] = set()
        self.waits: list[dict[str, Any]] = []
        self.active = 0
        self.progress = 0
        #: a replay check: answer from the history, never run or record a step; stop at the
        #: first step the history cannot answer and report it as ``next_step``
        self.check = bool(payload.get("check"))
        self.next_step: dict[str, Any] | None = None
        self.pausing = bool(payload.get("pausing")) and not self.check
        #: the platform clock is virtual (tests): attempt timeouts follow it, not real time
        self.virtual = bool(payload.get("virtual"))
        #: attempts running now, by (name, count, attempt), and those the platform timed out
        self.attempt_tasks: dict[tuple[str, int, int], asyncio.Future[Any]] = {}
        self.timed_out: set[tuple[str, int, int]] = set()
        self.stale = False
        self.failure: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._unwinder: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        #: attempts running now (their note and deadline) are watched by the isolate's one timer
        self._ticker = _ticker(self._loop)
        #: commits finished steps in this isolate (``local.py``); None: the host does
        writer = local.LOCAL
        self.local = writer if writer is not None and not self.virtual and not self.check else None
        #: steps with an attempt noted on the host: their record goes through the host,
        #: which removes the note's row in the same commit
        self.noted: set[tuple[str, int]] = set()

    # -- host calls -------------------------------------------------------------------------
    async def call(self, method: str, *args: Any) -> Any:
        """Record on the host (``args`` after the run's own fields of a ``wire`` record); a
        stale run (terminated, restarted) is given up silently."""
        if self.check:  # cannot happen: every path that records stops first in a check
            raise RuntimeError(f"internal error: a replay check tried to record {method}")
        self.active += 1
        record = wire.RECORDS[method](self.workflow, self.instance, self.generation, *args)
        # steps committed here ride with the call, so the host learns of them first
        notes = self.local.take(self.workflow, self.instance) if self.local is not None else None
        try:
            if notes:
                return await self.runtime.call_host("workflows", method, record, notes)
            return await self.runtime.call_host("workflows", method, record)
        except Exception as exc:
            remote = getattr(exc, "remote", None)
            if remote is not None and remote.type_name == "StaleRunError":
                self.abandon()
                await asyncio.get_running_loop().create_future()  # cancelled with the run
            raise
        finally:
            self.active -= 1
            self._maybe_unwind()

    async def step_done(self, name: str, count: int, state: str, value: bytes | None, error_name: str | None,
                        error_message: str | None, attempts: list[wire.Attempt], config: str,
                        first: int) -> dict[str, Any]:
        """Record a finished step: committed in this isolate when it holds the file
        (``local.py``), else by the host (:meth:`call`). Returns ``{"pause": bool}``."""
        writer = self.local
        if writer is None or (name, count) in self.noted or not writer.usable():
            return await self.call("step_done", name, count, state, value, error_name, error_message,
                                   attempts, config, first)
        record = wire.StepDone(self.workflow, self.instance, self.generation, name, count, state, value,
                               error_name, error_message, attempts, config, first)
        self.active += 1
        try:
            return await writer.step_done(record, attempts)
        except StaleRunError:
            self.abandon()
            await asyncio.get_running_loop().create_future()  # cancelled with the run
            raise  # pragma: no cover - never reached
        finally:
            self.active -= 1
            self._maybe_unwind()

    def abandon(self) -> None:
        self.stale = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def fail(self, error: BaseException) -> None:
        """A failure ``run`` must not be able to catch (non-determinism): end the run with it."""
        if self.failure is None:
            self.failure = error
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # -- keys, history and divergence ----------------------------------------------------------
    def next_key(self, name: str) -> tuple[str, int]:
        self.calls += 1
        if self.calls > self.max_steps:
            error = RuntimeError(
                f"instance '{self.instance}' of workflow '{self.workflow}' exceeded limits.steps: "
                f"'{name}' would be step {self.calls}, over the limit of {self.max_steps}. Raise "
                f"limits.steps in the workflow's config (at most 25,000) or split the work "
                f"across instances")
            self.fail(error)
            raise error
        count = self.counters.get(name, 0) + 1
        self.counters[name] = count
        self.progress += 1
        if name in self.mocks.names:
            self.touched.add(name)
        return name, count

    def lookup(self, key: tuple[str, int], kind: str) -> Record | None:
        rec = self.history.get(key)
        if rec is None:
            return None
        self.reached.add(key)
        if rec.kind != kind:
            error = _sdk().NonDeterminismError(
                f"replay of instance '{self.instance}' diverged from its stored history: "
                f"'{key[0]}' #{key[1]} was recorded as {KIND_WORDS.get(rec.kind, rec.kind)} but the code "
                f"now calls {KIND_WORDS.get(kind, kind)} with that name. The workflow's code changed; "
                f"restart the instance to run it from the top")
            self.fail(error)
            raise error
        return rec

    async def before_new(self, key: tuple[str, int], kind: str) -> None:
        """Before anything new runs: every recorded step must have been reached again."""
        if len(self.reached) < len(self.history):
            self.active += 1
            try:
                await self._settle()
            finally:
                self.active -= 1
            missing = [k for k in self.order if k not in self.reached]
            if missing:
                rec = self.history[missing[0]]
                error = _sdk().NonDeterminismError(
                    f"replay of instance '{self.instance}' diverged from its stored history: "
                    f"{KIND_WORDS.get(rec.kind, rec.kind)} '{rec.name}' #{rec.count} "
                    f"({'completed' if rec.state in ('ok', 'failed') else rec.state}) was not reached "
                    f"again, but new {KIND_WORDS.get(kind, kind)} '{key[0]}' #{key[1]} was requested. "
                    f"run() must make the same step calls on every replay (no randomness, clock or "
                    f"outside state between steps); restart the instance to run it from the top")
                self.fail(error)
                raise error
        if self.check:
            self.next_step = {"kind": KIND_WORDS.get(kind, kind), "name": key[0], "count": key[1]}
            await self.suspend({"kind": "check"})
        if self.pausing:
            await self.suspend({"kind": "pause"})

    async def _settle(self) -> None:
        """Let the other branches replay up to where they stand."""
        last, quiet = self.progress, 0
        while quiet < QUIET_TURNS:
            await asyncio.sleep(0)
            if self.progress != last:
                last, quiet = self.progress, 0
            else:
                quiet += 1

    # -- suspension ---------------------------------------------------------------------------
    async def suspend(self, wait: dict[str, Any]) -> Any:
        """Park this branch for good; the run is cancelled once every branch is parked."""
        self.waits.append(wait)
        if self.check and self.next_step is None and wait.get("step"):
            self.next_step = {"kind": {"sleep": "step.sleep", "event": "step.wait_for_event"}.get(
                wait["kind"], "step.do"), "name": wait["step"], "waiting": wait["kind"]}
        self._maybe_unwind()
        await asyncio.get_running_loop().create_future()

    def _maybe_unwind(self) -> None:
        if self.waits and self.active == 0 and (self._unwinder is None or self._unwinder.done()):
            self._unwinder = asyncio.ensure_future(self._unwind_when_quiet())

    async def _unwind_when_quiet(self) -> None:
        last, quiet = self.progress, 0
        while quiet < QUIET_TURNS:
            await asyncio.sleep(0)
            if self.active > 0:
                return  # that branch re-checks when its work ends
            if self.progress != last:
                last, quiet = self.progress, 0
            else:
                quiet += 1
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # -- errors ---------------------------------------------------------------------------------
    def rebuild(self, name: str | None, message: str | None) -> BaseException:
        """The error a failed step raised, rebuilt from its name and message for a replay."""
        sdk = _sdk()
        name, message = name or "Error", message or ""
        known: dict[str, type[BaseException]] = {
            "NonRetryableError": sdk.NonRetryableError, "WorkflowTimeoutError": sdk.WorkflowTimeoutError,
            "NonDeterminismError": sdk.NonDeterminismError}
        cls = known.get(name)
        if cls is None:
            candidate = getattr(builtins, name, None)
            if candidate is None and self.runtime.module is not None:
                candidate = getattr(self.runtime.module, name, None)
            if isinstance(candidate, type) and issubclass(candidate, Exception):
                cls = candidate
        if cls is not None:
            try:
                return cls(message)
            except Exception:
                pass
        return sdk.WorkflowStepError(message, name)

    # -- the primitives -----------------------------------------------------------------------
    async def do(self, name: str, config: Any, fn: Callable[..., Any], kwargs: dict[str, Any],
                 positional: list[Any], rollback: Any = None, rollback_config: Any = None) -> Any:
        rules.check_step_name(name)
        cfg = _DEFAULT_CONFIG if config is None else rules.step_config(config, name)
        undo = self._rollback_of(name, rollback, rollback_config)
        key = self.next_key(name)
        started = self.calls
        if undo is not None:
            value = await self._do(key, cfg, fn, kwargs, positional)
            self.compensations.append((started, key, undo[0], undo[1], value))
            return value
        return await self._do(key, cfg, fn, kwargs, positional)

    def _rollback_of(self, name: str, rollback: Any, rollback_config: Any
                     ) -> tuple[Callable[..., Any], dict[str, Any]] | None:
        """Check ``rollback``/``rollback_config`` before the step runs (bad input fails run)."""
        if rollback is None:
            if rollback_config is not None:
                raise TypeError(f"workflow '{self.workflow}', step '{name}': rollback_config is given "
                                f"without rollback; pass rollback=fn as well")
            return None
        if not callable(rollback):
            raise TypeError(f"workflow '{self.workflow}', step '{name}': rollback must be a function "
                            f"called as fn(ctx=, output=, error=), got {type(rollback).__name__} "
                            f"{rollback!r:.60}")
        try:
            cfg = rules.step_config(rollback_config, name)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"workflow '{self.workflow}', rollback_config of step '{name}': {exc}") from None
        return rollback, cfg

    async def _do(self, key: tuple[str, int], cfg: dict[str, Any], fn: Callable[..., Any],
                  kwargs: dict[str, Any], positional: list[Any]) -> Any:
        name = key[0]
        rec = self.lookup(key, "step")
        first = 1
        if rec is not None:
            if rec.state == "ok":
                return codec.decode(rec.value)
            if rec.state == "failed":
                raise self.rebuild(rec.error_name, rec.error_message)
            if self.check:  # retrying: its next attempt is what would run
                self.next_step = {"kind": "step.do", "name": name, "count": key[1], "attempt": rec.attempts + 1}
                await self.suspend({"kind": "check"})
            if not rec.due:  # retrying, and the next attempt is not due yet
                await self.suspend({"kind": "retry", "at": rec.wake_at, "step": name})
            first = rec.attempts + 1
            if self.pausing:
                await self.suspend({"kind": "pause"})
        elif len(self.reached) < len(self.history) or self.check or self.pausing:  # else it has nothing to do
            await self.before_new(key, "step")
        return await self._attempts(key, cfg, fn, kwargs, positional, first)

    async def _attempts(self, key: tuple[str, int], cfg: dict[str, Any], fn: Callable[..., Any],
                        kwargs: dict[str, Any], positional: list[Any], first: int) -> Any:
        """Run the step's attempts from ``first`` (see :meth:`_retrying`); its value as a
        replay will return it (tuples become lists, ...), so the first run and every
        replay see the same value."""
        name, count = key
        config_json = _DEFAULT_CONFIG_JSON if cfg is _DEFAULT_CONFIG else rules.config_json(cfg)
        timeout = _DEFAULT_TIMEOUT_S if cfg is _DEFAULT_CONFIG else rules.duration_s(cfg["timeout"], "timeout")

        async def one(attempt: int, ctx: AttrDict | None) -> bytes:
            value = await self._one_attempt(key, attempt, cfg, timeout, fn, kwargs, positional, ctx)
            try:
                return codec.encode(value, what=f"the result of step '{name}'")
            except (TypeError, ValueError) as exc:
                raise _Unstorable(exc) from None

        async def ok(data: bytes, attempts: list[wire.Attempt]) -> Any:
            answer = await self.step_done(name, count, "ok", data, None, None, attempts, config_json, first)
            if answer.get("pause"):
                self.pausing = True
            return codec.decode(data)

        async def failed(error: BaseException, ename: str, emsg: str, attempts: list[wire.Attempt]) -> Any:
            await self.step_done(name, count, "failed", None, ename, emsg, attempts, config_json, first)
            raise error from None

        # most step functions take no ctx: it is built only for one that does
        needs_ctx = any(a is _CTX for a in positional) or any(v is _CTX for v in kwargs.values())
        return await self._retrying(key, cfg, config_json, first, one, ok, failed,
                                    retry="step_retry", label=name, needs_ctx=needs_ctx)

    async def _retrying(self, key: tuple[str, int], cfg: dict[str, Any], config_json: str, first: int,
                        one: Callable[[int, AttrDict | None], Awaitable[Any]],
                        ok: Callable[[Any, list[wire.Attempt]], Awaitable[Any]],
                        failed: Callable[[BaseException, str, str, list[wire.Attempt]], Awaitable[Any]], *,
                        retry: str, label: str, needs_ctx: bool = True) -> Any:
        """The retry loop of a step and of a rollback: attempts of ``one(attempt, ctx)``
        (``ctx`` None unless ``needs_ctx``: building it was a few µs of every step)
        from ``first`` until one succeeds (``ok`` records it), none is left or the error
        says not to retry (``failed`` records it), or the next one must wait: then the
        failed attempts are recorded (``retry``: ``step_retry`` or ``rollback_retry``) and
        this branch suspends until the platform dispatches the instance again.

        A delay of zero (a test's ``disable_retry_delays``) runs the next attempt at once;
        the attempts made so far are recorded together with the outcome. A ``retries.delay``
        function that fails or returns no duration ends the retries with its own error.
        """
        name, count = key
        limit = int(cfg["retries"]["limit"])
        attempts: list[wire.Attempt] = []
        attempt = first
        while True:
            ctx = attrs({"step": {"name": name, "count": count}, "attempt": attempt, "config": cfg}) \
                if needs_ctx else None
            started = time.perf_counter()
            self.active += 1
            try:
                try:
                    value = await one(attempt, ctx)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the attempt failed
                    error = exc.original if isinstance(exc, _Unstorable) else exc
                    ename, emsg = error_info(error)
                    attempts.append(wire.Attempt(time.perf_counter() - started, False, ename, emsg))
                    final = isinstance(exc, _Unstorable) or is_non_retryable(error) or attempt > limit
                    delay = 0.0
                    if not final:
                        try:
                            if ctx is None:  # a delay function is called with it
                                ctx = attrs({"step": {"name": name, "count": count}, "attempt": attempt,
                                             "config": cfg})
                            delay = await self._retry_delay(name, cfg, attempt, ctx, error)
                        except (TypeError, ValueError) as bad:  # fails without more retries
                            error, (ename, emsg), final = bad, error_info(bad), True
                    if final:
                        return await failed(error, ename, emsg, attempts)
                    if delay <= 0:
                        attempt += 1
                        continue
                    answer = await self.call(retry, name, count, attempts, config_json, first, delay)
                    retry_at = answer["at"]
                else:
                    attempts.append(wire.Attempt(time.perf_counter() - started, True, None, None))
                    result = await ok(value, attempts)
                    self.progress += 1
                    return result
            finally:
                self.active -= 1
                self._maybe_unwind()
            await self.suspend({"kind": "retry", "at": retry_at, "step": label})

    async def _retry_delay(self, name: str, cfg: dict[str, Any], attempt: int, ctx: AttrDict,
                           error: BaseException) -> float:
        """Seconds before the next attempt; a ``retries.delay`` function is called with
        ``(ctx, error)`` and what it returns goes through the backoff. A function that
        raises or returns no duration fails the step (TypeError/ValueError naming it)."""
        if self.mocks.no_retry_delays:
            return 0.0
        fn = cfg["retries"]["delay"]
        base: float | None = None
        if callable(fn):
            where = (f"workflow '{self.workflow}', step '{name}': the retries.delay function "
                     f"{getattr(fn, '__name__', repr(fn))!r}")
            try:
                value = fn(ctx, error)
                if inspect.isawaitable(value):
                    value = await asyncio.wait_for(value, DELAY_FN_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise ValueError(f"{where} raised {type(exc).__name__}: {exc}; the step fails without "
                                 f"more retries. Make it return a duration for every error") from None
            if isinstance(value, bool) or not isinstance(value, (int, float, str, _dt.timedelta)):
                raise TypeError(f"{where} returned {type(value).__name__} {value!r:.60}; return "
                                f"milliseconds or a string like '30 seconds'")
            try:
                base = rules.duration_s(value, f"{where} returned a bad duration")
            except ValueError as exc:
                raise ValueError(f"{exc}; return milliseconds or a string like '30 seconds'") from None
        return min(rules.retry_delay_s(cfg, attempt, base), rules.MAX_SLEEP_S)

    async def _one_attempt(self, key: tuple[str, int], attempt: int, cfg: dict[str, Any], timeout: float,
                           fn: Callable[..., Any], kwargs: dict[str, Any], positional: list[Any],
                           ctx: AttrDict | None) -> Any:
        name, count = key
        mocks = self.mocks
        if name in mocks.names:  # a test mocked this step (most runs have no mocks at all)
            mocked_error = mocks.step_error(name, attempt)
            if mocked_error is not None:
                raise self.rebuild(mocked_error.get("name"), mocked_error.get("message"))
            if mocks.step_timeout(name, attempt):
                raise _sdk().WorkflowTimeoutError(f"step '{name}' attempt {attempt} timed out (forced by a "
                                                  f"test mock)")
            found, mocked = mocks.step_result(name, count)
            if found:
                return mocked
        if ctx is None:  # nothing to put in (see _attempts' needs_ctx)
            args, call_kwargs = positional, kwargs
        else:
            args = [ctx if a is _CTX else a for a in positional]
            call_kwargs = {k: (ctx if v is _CTX else v) for k, v in kwargs.items()}

        def timed_out() -> BaseException:
            return _sdk().WorkflowTimeoutError(
                f"step '{name}' attempt {attempt} timed out after {rules.describe_s(timeout)} "
                f"(config timeout {cfg['timeout']!r})")

        if self.virtual:
            note = asyncio.get_running_loop().call_later(IN_FLIGHT_NOTE_S, self._note_in_flight, name, count,
                                                         attempt)
            try:
                return await self._on_platform_clock((name, count, attempt), timeout, fn, args, call_kwargs,
                                                     timed_out)
            finally:
                note.cancel()
        result = fn(*args, **call_kwargs)
        if not inspect.isawaitable(result):
            # a plain function held the loop from start to end: no timer could have fired,
            # so neither the timeout nor the in-flight note applies (as with timers armed)
            return result
        ticker = self._ticker
        watched = ticker.watch(self, name, count, attempt, timeout)
        try:
            return await result
        except asyncio.CancelledError:
            if watched.expired:  # the tick cancelled it: the deadline passed
                watched.expired = False
                task = watched.task
                if task is not None and task.uncancel() <= watched.cancelling:
                    raise timed_out() from None
            raise
        finally:
            ticker.watched.discard(watched)

    async def _on_platform_clock(self, key: tuple[str, int, int], timeout: float, fn: Callable[..., Any],
                                 args: list[Any], kwargs: dict[str, Any],
                                 timed_out: Callable[[], BaseException]) -> Any:
        """Run an attempt whose timeout the host measures on the (virtual) platform clock: it
        signals ``timeout`` when the clock passes the deadline, which cancels the attempt.

        The body starts once the host has armed that timer, so whatever the attempt does
        (a side effect a test waits for before moving the clock) happens with its deadline
        already on the clock; started first, a clock moved in between left it with none."""
        async def body() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        task: asyncio.Future[Any] | None = None
        try:
            await self.call("attempt_timer", key[0], key[1], key[2], timeout)
            task = self.attempt_tasks[key] = asyncio.ensure_future(body())
            return await task
        except asyncio.CancelledError:
            if key in self.timed_out and task is not None and task.cancelled():
                raise timed_out() from None
            raise
        finally:
            self.attempt_tasks.pop(key, None)
            self.timed_out.discard(key)
            if task is not None and not task.done():
                task.cancel()

    def time_out(self, name: str, count: int, attempt: int) -> None:
        """The host's platform-clock timer for this attempt fired (virtual clock only)."""
        key = (name, count, attempt)
        task = self.attempt_tasks.get(key)
        if task is not None and not task.done():
            self.timed_out.add(key)
            task.cancel()

    def _note_in_flight(self, name: str, count: int, attempt: int) -> None:
        """The attempt is still running: tell the host, so a crash now is listed in describe.
        Fire and forget: the attempt does not wait for it."""
        record = wire.AttemptNote(self.workflow, self.instance, self.generation, name, count, attempt, 0.0)
        self.noted.add((name, count))

        async def send() -> None:
            try:
                await self.runtime.call_host("workflows", "attempt_started", record)
            except Exception:  # a stale run, a platform going down: nothing to keep
                pass

        task = asyncio.ensure_future(send())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- rollbacks (saga) -----------------------------------------------------------------------
    async def roll_back(self, error: BaseException) -> None:
        """Run the rollbacks of completed steps in reverse step-start order, each recorded
        like a step; a recorded one is skipped, so none runs again after it was recorded."""
        for _, key, fn, cfg, output in sorted(self.compensations, key=lambda c: -c[0]):
            done = self.rolled.get(key)
            first = 1
            if done is not None:
                state, wake_at, due, attempts = done
                if state in ("ok", "failed"):
                    continue
                if not due:
                    await self.suspend({"kind": "retry", "at": wake_at, "step": f"rollback of {key[0]}"})
                first = attempts + 1
            await self._rollback_attempts(key, fn, cfg, output, error, first)

    async def _rollback_attempts(self, key: tuple[str, int], fn: Callable[..., Any], cfg: dict[str, Any],
                                 output: Any, error: BaseException, first: int) -> None:
        """Run a rollback's attempts from ``first`` (see :meth:`_retrying`); one that fails
        for good is recorded as failed and the next rollback runs."""
        name, count = key
        config_json = rules.config_json(cfg)
        timeout = rules.duration_s(cfg["timeout"], "timeout")

        async def one(attempt: int, ctx: AttrDict | None) -> None:
            try:
                async with asyncio.timeout(timeout):
                    result = call_accepting(fn, ctx=ctx, output=output, error=error)
                    if inspect.isawaitable(result):
                        await result
            except TimeoutError:
                raise _sdk().WorkflowTimeoutError(
                    f"rollback of step '{name}' attempt {attempt} timed out after "
                    f"{rules.describe_s(timeout)}") from None

        async def ok(_value: None, attempts: list[wire.Attempt]) -> None:
            await self.call("rollback_done", name, count, "ok", None, None, attempts, config_json, first)

        async def failed(_error: BaseException, ename: str, emsg: str, attempts: list[wire.Attempt]) -> None:
            await self.call("rollback_done", name, count, "failed", ename, emsg, attempts, config_json, first)

        await self._retrying(key, cfg, config_json, first, one, ok, failed, retry="rollback_retry",
                             label=f"rollback of {name}")

    async def sleep(self, name: str, seconds: float | None, until: float | None) -> None:
        key = self.next_key(name)
        rec = self.lookup(key, "sleep")
        if rec is not None:
            if rec.state == "ok":
                return None
            await self.suspend({"kind": "sleep", "at": rec.wake_at, "step": name})
        await self.before_new(key, "sleep")
        if self.mocks.no_sleeps:
            seconds, until = 0.0, None
        answer = await self.call("sleep", key[0], key[1], seconds, until)
        if answer.get("done"):
            self.progress += 1
            return None
        await self.suspend({"kind": "sleep", "at": answer["at"], "step": name})

    async def wait_for_event(self, name: str, event_type: str, timeout_s: float) -> Any:
        key = self.next_key(name)
        if event_type in self.mocks.events:
            self.touched.add(f"event:{event_type}")
        rec = self.lookup(key, "waitForEvent")
        if rec is not None:
            if rec.state == "ok":
                return attrs(codec.decode(rec.value))
            if rec.state == "failed":
                raise self.rebuild(rec.error_name, rec.error_message)
            await self.suspend({"kind": "event", "type": event_type, "at": rec.wake_at, "step": name})
        await self.before_new(key, "waitForEvent")
        mock: Any = None
        if name in self.mocks.event_timeouts:
            mock = "timeout"
        elif event_type in self.mocks.events:
            mock = {"payload": self.mocks.events[event_type]}
        answer = await self.call("wait_event", key[0], key[1], event_type, timeout_s, mock)
        self.progress += 1
        if "value" in answer:
            return attrs(codec.decode(answer["value"]))
        if "error" in answer:
            raise _sdk().WorkflowTimeoutError(answer["error"]["message"])
        await self.suspend({"kind": "event", "type": event_type, "at": answer["at"], "step": name})


def call_accepting(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``fn`` with those of ``kwargs`` it accepts (all of them if it takes ``**kw``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(**kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**kwargs)
    return fn(**{k: v for k, v in kwargs.items() if k in params})


class Mocks:
    """Test mocks shipped with each dispatch (see handles.py for the host-side half)."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        self.results: dict[str, dict[int | None, bytes]] = {}
        for name, count, value in data.get("results", []):
            self.results.setdefault(name, {})[count] = value
        self.errors: dict[str, dict[str, Any]] = {e["step"]: e for e in data.get("errors", [])}
        self.timeouts: dict[str, int | None] = {n: t for n, t in data.get("timeouts", [])}
        self.events: dict[str, bytes | None] = {t: p for t, p in data.get("events", [])}
        self.event_timeouts: set[str] = set(data.get("event_timeouts", []))
        self.no_sleeps = bool(data.get("no_sleeps"))
        self.no_retry_delays = bool(data.get("no_retry_delays"))
        self.names = set(self.results) | set(self.errors) | set(self.timeouts) | self.event_timeouts

    def step_result(self, name: str, count: int) -> tuple[bool, Any]:
        by_count = self.results.get(name)
        if not by_count:
            return False, None
        if count in by_count:
            return True, codec.decode(by_count[count])
        if None in by_count:
            return True, codec.decode(by_count[None])
        return False, None

    def step_error(self, name: str, attempt: int) -> dict[str, Any] | None:
        error = self.errors.get(name)
        if error is None or (error.get("times") is not None and attempt > error["times"]):
            return None
        return error

    def step_timeout(self, name: str, attempt: int) -> bool:
        if name not in self.timeouts:
            return False
        times = self.timeouts[name]
        return times is None or attempt <= times


class StepFunction:
    """What ``@step.do`` returns: ``await fn()`` runs (or replays) the step."""

    def __init__(self, step: WorkflowStep, fn: Callable[..., Any], name: str | None,
                 depends: list[Any] | tuple[Any, ...] | None, concurrent: bool, config: Any,
                 rollback: Any = None, rollback_config: Any = None) -> None:
        self._step = step
        self.rollback_fn = rollback
        self.rollback_config = rollback_config
        self.fn = fn
        self.name = name if name is not None else getattr(fn, "__name__", "step")
        self._step_name = self.name
        self.depends = list(depends) if depends is not None else None
        self.concurrent = concurrent
        self.config = config
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self) -> Any:
        return self._step._run_function(self)

    def __repr__(self) -> str:
        return f"<workflow step {self.name!r}>"


class WorkflowStep:
    """``step`` in ``run(self, event, step)``: ``do``, ``sleep``, ``sleep_until``, ``wait_for_event``."""

    def __init__(self, session: RunSession) -> None:
        self._session = session
        self._closures: dict[str, StepFunction] = {}
        self._memo: dict[str, Any] = {}
        #: step name -> futures of dependents waiting for that step, while it runs
        self._in_flight: dict[str, list[asyncio.Future[Any]]] = {}

    # -- step.do in its three forms -------------------------------------------------------------
    def do(self, name: Any = None, depends: Any = None, concurrent: Any = False, config: Any = None,
           callback: Any = None, *, rollback: Any = None, rollback_config: Any = None) -> Any:
        """``@step.do(name=None, *, concurrent=False, config=None)`` (also ``depends=[...]``),
        or Cloudflare's plain ``await step.do(name, fn)`` / ``await step.do(name, config, fn)``.
        ``rollback=fn`` (with ``rollback_config``) undoes the step if the instance fails."""
        undo = (rollback, rollback_config)
        if callable(name) and not isinstance(name, str):  # bare @step.do
            return self._register(StepFunction(self, name, None, None, False, None))
        if callable(depends) and not isinstance(depends, (list, tuple)):
            return self._plain(name, config, depends, undo)
        if isinstance(depends, dict) and callable(concurrent):
            return self._plain(name, depends, concurrent, undo)
        if callback is not None:
            return self._plain(name, config, callback, undo)
        if depends is not None and not isinstance(depends, (list, tuple)):
            raise TypeError(f"step.do('{name}'): depends must be a list of steps, got "
                            f"{type(depends).__name__}")

        def decorator(fn: Callable[..., Any]) -> StepFunction:
            return self._register(StepFunction(self, fn, name, depends, bool(concurrent), config,
                                               rollback, rollback_config))

        return decorator

    def _register(self, fn: StepFunction) -> StepFunction:
        self._closures[fn.__name__] = fn  # parameters may name the function ...
        self._closures[fn.name] = fn      # ... or the step (the latest definition wins)
        return fn

    def _plain(self, name: Any, config: Any, fn: Callable[..., Any], undo: tuple[Any, Any] = (None, None)) -> Any:
        try:
            wants_ctx = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                            for p in _parameters(fn))
        except (TypeError, ValueError):
            wants_ctx = False
        return self._call(name, config, fn, {}, [_CTX] if wants_ctx else [], undo)

    async def _run_function(self, sf: StepFunction) -> Any:
        kwargs, positional = await self._arguments(sf)
        return await self._call(sf.name, sf.config, sf.fn, kwargs, positional,
                                (sf.rollback_fn, sf.rollback_config))

    async def _call(self, name: Any, config: Any, fn: Callable[..., Any], kwargs: dict[str, Any],
                    positional: list[Any], undo: tuple[Any, Any] = (None, None)) -> Any:
        """Run (or replay) the step in the caller's own task.

        Why no task of its own: a task per step cost two extra loop turns per step (the
        task's first run, then waking its awaiter), a third of the isolate's loop turns on
        a sequential workflow. Dependents that find the step in flight wait on a future of
        their own (see :meth:`_resolve`); a task the Worker made itself (``gather``,
        ``create_task``) that runs a step is remembered so the run's end cancels it.
        """
        session = self._session
        current = asyncio.current_task(session._loop)
        if current is not None and current is not session.task and current not in session.tasks:
            session.tasks.add(current)
            current.add_done_callback(session.tasks.discard)
        if not isinstance(name, str):  # do() refuses it with the step-name error
            return await session.do(name, config, fn, kwargs, positional, *undo)
        waiters: list[asyncio.Future[Any]] = []
        self._in_flight[name] = waiters
        try:
            result = await session.do(name, config, fn, kwargs, positional, *undo)
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    if isinstance(exc, asyncio.CancelledError):
                        waiter.cancel()
                    else:
                        waiter.set_exception(exc)
            raise
        finally:
            if self._in_flight.get(name) is waiters:
                del self._in_flight[name]
        self._memo[name] = result
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)
        return result

    # -- dependencies ---------------------------------------------------------------------------
    async def _arguments(self, sf: StepFunction) -> tuple[dict[str, Any], list[Any]]:
        try:
            params = _parameters(sf.fn)
        except (TypeError, ValueError):
            params = []
        if not params and sf.depends is None:  # most steps: nothing to pass
            return {}, []
        plan: list[tuple[inspect.Parameter, Any]] = []
        deps = [self._lookup(d, sf) for d in sf.depends] if sf.depends is not None else None
        used = 0
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.name == "ctx":
                plan.append((p, _CTX))
            elif deps is not None:
                if used < len(deps):
                    plan.append((p, deps[used]))
                    used += 1
                elif p.default is not p.empty:
                    plan.append((p, _DEFAULT))
                else:
                    raise TypeError(f"step '{sf.name}': parameter '{p.name}' gets no result: depends lists "
                                    f"{len(deps)} step(s) for the non-ctx parameters")
            elif p.name in self._closures:
                plan.append((p, self._closures[p.name]))
            elif p.default is not p.empty:
                plan.append((p, _DEFAULT))
            else:
                known = ", ".join(sorted(self._closures)) or "none yet"
                raise TypeError(f"step '{sf.name}': parameter '{p.name}' is neither ctx nor a step defined "
                                f"before it (steps: {known}); name parameters after the steps whose "
                                f"results they take")
        if deps is not None and used < len(deps):
            raise TypeError(f"step '{sf.name}': depends lists {len(deps)} step(s) but the function takes "
                            f"only {used} non-ctx parameter(s)")
        sources = [s for _, s in plan if isinstance(s, StepFunction)]
        if sf.concurrent:
            values = await asyncio.gather(*(self._resolve(s) for s in sources))
        else:
            values = [await self._resolve(s) for s in sources]
        results = iter(values)
        kwargs: dict[str, Any] = {}
        positional: list[Any] = []
        for p, source in plan:
            if source is _DEFAULT:
                continue
            value = _CTX if source is _CTX else next(results)
            if p.kind is p.POSITIONAL_ONLY:
                positional.append(value)
            else:
                kwargs[p.name] = value
        return kwargs, positional

    def _lookup(self, dep: Any, sf: StepFunction) -> StepFunction:
        if isinstance(dep, StepFunction):
            return dep
        if isinstance(dep, str) and dep in self._closures:
            return self._closures[dep]
        raise TypeError(f"step '{sf.name}': depends entry {dep!r} is not a step defined with @step.do")

    async def _resolve(self, dep: StepFunction) -> Any:
        """A dependency's result: remembered, in flight elsewhere, or run now (once)."""
        if dep.name in self._memo:
            return self._memo[dep.name]
        waiters = self._in_flight.get(dep.name)
        if waiters is not None:  # running in another branch: its end answers this future
            waiter = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
            return await waiter
        return await dep()

    # -- sleeps and events ---------------------------------------------------------------------
    async def sleep(self, name: str, duration: Any) -> None:
        rules.check_step_name(name, "step.sleep")
        seconds = rules.sleep_s(duration, name)
        await self._session.sleep(name, seconds, None)

    async def sleep_until(self, name: str, timestamp: Any) -> None:
        rules.check_step_name(name, "step.sleep_until")
        when = rules.until_epoch(timestamp, name, time.time())
        await self._session.sleep(name, None, when)

    sleepUntil = sleep_until  # noqa: N815 - Cloudflare's name

    async def wait_for_event(self, name: str, event_type: Any = None, timeout: Any = rules.DEFAULT_WAIT_TIMEOUT,
                             **options: Any) -> Any:
        """Wait for ``sendEvent(type=event_type)``; returns ``{payload, timestamp, type}``."""
        if isinstance(event_type, dict):  # waitForEvent(name, {"type": ..., "timeout": ...})
            options = {**event_type, **options}
            event_type = options.get("type")
            timeout = options.get("timeout", timeout)
        event_type = options.get("type", event_type)
        rules.check_step_name(name, "step.wait_for_event")
        rules.check_event_type(event_type)
        seconds = rules.wait_timeout_s(timeout, name)
        return await self._session.wait_for_event(name, event_type, seconds)

    waitForEvent = wait_for_event  # noqa: N815 - Cloudflare's name

