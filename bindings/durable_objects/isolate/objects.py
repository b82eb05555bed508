"""The owner side: live Durable Object instances in the isolate of the Worker that defines
their class.

There is one isolate per Worker, and every event for an object is routed by the host to
that isolate, so ``LiveObjects.objects`` holding one entry per id is what makes "exactly one
live instance per id" true platform-wide. Each entry has an input gate (``gate.py``):
events to one object run one at a time, different objects run concurrently; an event
waiting for an outgoing call to another object lets the next event in meanwhile (as
Cloudflare's gate does), so A -> B -> A and two objects calling each other both answer.

Idle objects are evicted after ``EDGELET_DO_IDLE_TIMEOUT`` seconds (default 10) of real
time: the instance is dropped and its SQLite connection closed, so touching many objects
costs memory only while they are in use. State lives in storage, so the next event simply
builds a new instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import traceback
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelet.bindings.durable_objects import wire
from edgelet.bindings.durable_objects.ids import DurableObjectId, check_id
from edgelet.bindings.durable_objects.isolate.gate import (
    CALL_CHAIN,
    CURRENT_EVENT,
    Event,
    InputGate,
    chain_of,
    reenters,
)
from edgelet.bindings.durable_objects.isolate.state import DurableObjectState, _run
from edgelet.bindings.durable_objects.isolate.storage import (
    AlarmClient,
    ConnectionPool,
    DurableObjectStorage,
)
from edgelet.bindings.durable_objects.schema import KV_TABLE, object_path, objects_root
from edgelet.runtime.rpc_values import check_rpc_value

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

log = logging.getLogger("edgelet.durable_objects")

DEFAULT_IDLE_TIMEOUT = 10.0
DEFAULT_MAX_OPEN = 256
#: Cloudflare gives an alarm() handler 15 minutes of wall time
DEFAULT_ALARM_TIMEOUT = 15 * 60.0
#: a call inside an isolate waits request_timeout_ms times this, once more per caller
#: up its chain (see LiveObjects._limit)
CALL_MARGIN = 0.9
_MISSING = object()
#: results that need no check before they go back to the caller (see rpc_values)
_PLAIN_RESULTS = frozenset((str, int, float, bool, bytes))



def _env_number(name: str, default: float, what: str) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        log.warning("%s=%r is not %s; using %g", name, raw, what, default)
        return default


def idle_timeout() -> float:
    """Seconds an object stays in memory after its last event (EDGELET_DO_IDLE_TIMEOUT)."""
    return max(_env_number("EDGELET_DO_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT, "a number of seconds"), 0.01)


def max_open_databases() -> int:
    """Object databases kept open at once per isolate (EDGELET_DO_MAX_OPEN_DATABASES)."""
    return max(int(_env_number("EDGELET_DO_MAX_OPEN_DATABASES", DEFAULT_MAX_OPEN, "a number")), 1)


def _raise_file_limit() -> None:
    """Many objects mean many files: use the hard limit on open files, not the soft one."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def trim_memory() -> None:
    """Give freed SQLite memory back to the OS (glibc keeps it otherwise)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


class AlarmInfo(dict):
    """The argument of ``alarm(self, alarm_info)``: ``retryCount`` and ``isRetry``."""

    def __init__(self, retry_count: int) -> None:
        super().__init__(retryCount=retry_count, isRetry=retry_count > 0)

    retryCount = property(lambda self: self["retryCount"])  # noqa: N815
    isRetry = property(lambda self: self["isRetry"])  # noqa: N815
    retry_count = retryCount
    is_retry = isRetry


class _HostAlarms(AlarmClient):
    """Alarms live in the host's index (it owns the timers); storage asks it."""

    def __init__(self, manager: LiveObjects, ns: str, id_hex: str) -> None:
        self._manager = manager
        self._ns = ns
        self._id = id_hex

    async def _call(self, method: str, *args: Any) -> Any:
        if not self._manager.owner:
            raise RuntimeError("alarms are unavailable: this isolate runs no Durable Object "
                               "class the host knows of (is the class bound by any Worker?)")
        return await self._manager.runtime.call_host("durable_objects", method, self._ns, self._id, *args)

    async def get(self) -> int | None:
        return await self._call("getAlarm")

    async def set(self, when_ms: int) -> None:
        await self._call("setAlarm", when_ms)

    async def delete(self) -> None:
        await self._call("deleteAlarm")


class LiveObject:
    """One object in memory: its gate, its instance (built lazily), its storage."""

    def __init__(self, manager: LiveObjects, ns: str, class_name: str, id_hex: str,
                 name: str | None) -> None:
        self.key = f"{ns}/{id_hex}"
        self.ns = ns
        self.class_name = class_name
        self.id_hex = id_hex
        self.gate = InputGate()
        #: tasks entitled to act inside the gate (the holder, re-entrant calls, blockers)
        self.gate_tasks: set[asyncio.Task[Any]] = set()
        self.blockers: list[asyncio.Future[Any]] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.instance: Any = None
        self.active = 0
        self.last_used = asyncio.get_running_loop().time()
        self.storage = manager.open_storage(ns, id_hex)
        #: hibernatable WebSockets by token (isolate/websockets.py); they outlive eviction
        #: in the host, not here
        self.sockets: dict[str, Any] = {}
        #: open sockets it ``accept()``-ed (not hibernatable): they keep it in memory
        self.pinned: dict[str, Any] = {}
        self.auto_response: Any = None
        self.state = DurableObjectState(self, DurableObjectId(id_hex, name), self.storage)

    async def run_gated(self, fn: Any) -> Any:
        """``blockConcurrencyWhile`` from outside any event: take the gate, then run
        (without letting any event in, even while ``fn`` awaits another object)."""
        event = Event(self, "blockConcurrencyWhile", exclusive=True,
                      caller=chain_of(CURRENT_EVENT.get()))
        await self.gate.enter(event)
        task = asyncio.current_task()
        assert task is not None
        self.gate_tasks.add(task)
        token = CURRENT_EVENT.set(event)
        try:
            result = await _run(fn)
            await self.drain_blockers()
            return result
        except BaseException:
            self.instance = None
            raise
        finally:
            CURRENT_EVENT.reset(token)
            self.gate_tasks.discard(task)
            event.done = True
            self.gate.leave(event)

    async def drain_blockers(self) -> None:
        """Wait for every ``blockConcurrencyWhile`` started under the gate; one that failed
        resets the object and fails the event."""
        failed: BaseException | None = None
        while self.blockers:
            pending, self.blockers = self.blockers, []
            for result in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(result, BaseException) and failed is None:
                    failed = result
        if failed is not None:
            self.instance = None
            raise failed

    @property
    def idle(self) -> bool:
        return (self.active == 0 and not self.gate.locked() and not self.blockers
                and not self.background and not self.pinned and not self.storage._implicit)


class LiveObjects:
    """Every live object of this isolate, keyed ``namespace/id``."""

    def __init__(self, runtime: IsolateServices) -> None:
        self.runtime = runtime
        self.objects: dict[str, LiveObject] = {}
        #: evicted objects' databases when there is no folder at all (SQLite :memory:)
        self.snapshots: dict[str, bytes] = {}
        #: the host named this isolate as the one that runs Durable Object classes
        self.owner = False
        self.delete_all_deletes_alarm = True
        #: seconds a call inside this isolate waits for an object (request_timeout_ms;
        #: set by ``setup``), and the wall-time limit of an alarm() handler
        self.call_timeout: float = 0.0
        self.alarm_timeout: float = DEFAULT_ALARM_TIMEOUT
        state_dir = runtime.options.get("state_dir")
        self.root = objects_root(state_dir) if state_dir else None
        self.idle_timeout = idle_timeout()
        self.pool = ConnectionPool(max_open_databases())
        self._loop = asyncio.get_running_loop()
        self._sweep: asyncio.TimerHandle | None = None
        #: objects evicted while holding hibernatable WebSockets: rebuilt with them
        self.hibernated: set[str] = set()
        #: the host's answer to "which objects of this Worker have hibernatable sockets",
        #: asked once per isolate (see _sockets_from_host)
        self._asked_host: asyncio.Future[None] | None = None
        from edgelet.bindings.durable_objects.isolate.local import IndexTracker
        #: what the host's index must hear of the calls this isolate delivered itself
        self.tracker = IndexTracker(runtime)
        _raise_file_limit()

    # -- storage ----------------------------------------------------------------------
    def db_path(self, ns: str, id_hex: str) -> Path | None:
        return None if self.root is None else object_path(self.root, ns, id_hex)

    def open_storage(self, ns: str, id_hex: str) -> DurableObjectStorage:
        key = f"{ns}/{id_hex}"
        return DurableObjectStorage(self.db_path(ns, id_hex), alarms=_HostAlarms(self, ns, id_hex),
                                    snapshot=self.snapshots.pop(key, None),
                                    delete_all_deletes_alarm=self.delete_all_deletes_alarm,
                                    pool=self.pool)

    def _close_storage(self, key: str, storage: DurableObjectStorage) -> None:
        snapshot = storage.close()
        if snapshot is not None:
            self.snapshots[key] = snapshot

    # -- events -----------------------------------------------------------------------
    def _live(self, ns: str, class_name: str, id_hex: str, name: str | None) -> LiveObject:
        key = f"{ns}/{id_hex}"
        live = self.objects.get(key)
        if live is None:
            live = LiveObject(self, ns, class_name, id_hex, name)
            self.objects[key] = live
        elif name is not None and live.state.id.name is None:
            live.state.id.name = name
        return live

    async def call(self, payload: list[Any]) -> list[Any]:
        """One event for one object from the host: ``kind`` is fetch, call (RPC), get
        (property) or alarm."""
        event = wire.ObjectEvent(*payload)
        id_hex = check_id(event.id_hex, where="Durable Object event")
        return await self.deliver(event.namespace, event.class_name, id_hex, event.name,
                                  event.kind, event.method, event.body, event.chain)

    async def call_local(self, ns: str, class_name: str, id_hex: str, name: str | None,
                         kind: str, method: str, body: Any, chain: tuple[str, ...]) -> list[Any]:
        """A call from this very isolate to one of its own objects (see ``local.py``).

        The host routes every event of these classes to this isolate, so delivering here
        is what it would do, without the two trips through it. It still learns of the
        object: the first call of an id waits for the host to write the id's index row
        (a listing must show it even after a kill -9); later uses are batched.

        The event runs in a task of its own, as one from the host does: the object's code
        does not share the caller's context variables, and a caller that gives up (its
        task is cancelled, a ``wait_for`` times out) does not cut the object's event short.
        An event that has not answered within the Worker's ``request_timeout_ms`` is
        cancelled and the caller gets a ``TimeoutError`` naming both objects, as a call
        routed by the host gets its 504 (``call_timeout``).
        """
        tracker = self.tracker
        if (ns, id_hex) in tracker.known:
            tracker.used(ns, id_hex, name)
        else:
            await tracker.announce(ns, id_hex, name)
        loop = self._loop
        box: list[Event] = []
        task = loop.create_task(self.deliver(ns, class_name, id_hex, name, kind, method, body,
                                             chain, box=box))
        waiter = loop.create_future()
        task.add_done_callback(partial(_relay, waiter))
        limit = self._limit(chain)
        timer = loop.call_later(limit, _expire, waiter, task) if limit else None
        try:
            return await waiter
        except _Expired:
            waiting = list(box[0].waiting) if box else []
            raise TimeoutError(self._timeout_message(class_name, id_hex, name, kind, method,
                                                     chain, waiting, limit)) from None
        finally:
            if timer is not None:
                timer.cancel()

    def _limit(self, chain: tuple[str, ...]) -> float:
        """How long a call inside this isolate waits: a little less than request_timeout_ms,
        and less again for each caller up the chain, so the innermost call that hangs fails
        first, with the message that names it, and the caller can still answer before the
        host's 504 for the whole request."""
        return self.call_timeout * CALL_MARGIN ** (len(chain) + 1)

    def _timeout_message(self, class_name: str, id_hex: str, name: str | None, kind: str,
                         method: str, chain: tuple[str, ...], waiting: list[str],
                         limit: float) -> str:
        target = f"{class_name} {name!r}" if name else f"{class_name} {id_hex}"
        what = "fetch()" if kind == "fetch" else "alarm()" if kind == "alarm" else f"{method}()"
        caller = ""
        if chain:
            callers = [self._describe_key(k.partition("#")[0]) for k in chain]
            caller = f", called from {' -> '.join(callers)}"
        if waiting:
            caller += f"; it was waiting for {', '.join(waiting)}"
        return (f"Durable Object {target} did not answer {what} within {limit:.3g} s "
                f"(request_timeout_ms is {self.call_timeout * 1000:g} ms; a call inside a Worker "
                f"gives up a little sooner){caller}; its event was cancelled. An object waits for "
                f"its input gate: if two objects call each other from inside "
                f"blockConcurrencyWhile() (which keeps the gate shut), or an event never "
                f"returns, every later call waits; call the other object after "
                f"blockConcurrencyWhile() returns, or raise request_timeout_ms for slow work")

    def _describe_key(self, key: str) -> str:
        live = self.objects.get(key)
        if live is None:
            return key
        return f"{live.class_name} {live.state.id.name!r}" if live.state.id.name else \
            f"{live.class_name} {live.id_hex}"

    async def deliver(self, ns: str, class_name: str, id_hex: str, name: str | None, kind: str,
                      method: str, body: Any, chain: Any, box: list[Event] | None = None) -> list[Any]:
        key = f"{ns}/{id_hex}"
        live = self.objects.get(key)
        if live is None or (name is not None and live.state.id.name is None):
            live = self._live(ns, class_name, id_hex, name)
        if self._asked_host is None or not self._asked_host.done():
            await self._sockets_from_host()
        if self.hibernated and key in self.hibernated:  # evicted with open sockets
            self.hibernated.discard(key)  # getWebSockets() must see them again
            from edgelet.bindings.durable_objects.isolate.websockets import restore
            await restore(live, self.runtime)
        live.active += 1
        chain = tuple(str(c) for c in chain) if chain else ()
        event = Event(live, method if kind in ("call", "get") else kind, caller=chain)
        if box is not None:
            box.append(event)
        try:
            if reenters(live.gate, chain):  # A -> ... -> A while A holds its gate
                return await self._in_gate(live, event, kind, method, body, chain)
            await live.gate.enter(event)
            return await self._in_gate(live, event, kind, method, body, chain)
        finally:
            event.done = True
            live.gate.leave(event)
            live.active -= 1
            live.last_used = self._loop.time()
            if self._sweep is None:
                self._arm_sweep()

    async def _sockets_from_host(self) -> None:
        """Learn, once, which objects have hibernatable sockets the host kept open.

        Why: after this isolate restarted (a crash, a code reload) its objects are gone but
        their sockets are not; a fresh instance must see them in ``getWebSockets()`` from
        its first event, not only once one of them sends a message."""
        if self._asked_host is not None:
            await asyncio.shield(self._asked_host)
            return
        self._asked_host = asyncio.get_running_loop().create_future()
        try:
            from edgelet.bindings.durable_objects.isolate.websockets import hibernated_objects
            keys = await hibernated_objects(self.runtime)
            self.hibernated.update(k for k in keys if k not in self.objects or not self.objects[k].sockets)
        except Exception as exc:  # an older host, a closed channel: sockets come back lazily
            log.debug("could not list the objects with hibernated WebSockets: %s", exc)
        finally:
            self._asked_host.set_result(None)

    async def _in_gate(self, live: LiveObject, event: Event, kind: str, method: str, body: Any,
                       chain: tuple[str, ...]) -> list[Any]:
        task = asyncio.current_task(self._loop)
        assert task is not None
        live.gate_tasks.add(task)
        token = CALL_CHAIN.set(tuple(c.partition("#")[0] for c in chain) + (live.key,))
        current = CURRENT_EVENT.set(event)
        try:
            if kind == "alarm":
                skipped = _alarm_not_due(live, body)
                if skipped is not None:
                    return [wire.OK, skipped]
            instance = live.instance
            if instance is None:
                instance = await self._instance(live)
            value = await self._dispatch(live, instance, kind, method, body)
            if live.blockers:
                await live.drain_blockers()
            if live.storage._implicit:  # the answer leaves once the writes are committed
                await live.storage.settle()
            return [wire.OK, value]
        except MemoryError:
            raise  # the isolate restarts itself: memory after a MemoryError is unreliable
        except Exception as exc:
            answer = wire.error_answer(exc, traceback.format_exc())
            if live.storage._implicit:  # what it wrote before failing (an alarm given up) too
                try:
                    await live.storage.settle()
                except Exception:
                    log.exception("committing the writes of a failed Durable Object event failed")
            return answer
        finally:
            CURRENT_EVENT.reset(current)
            CALL_CHAIN.reset(token)
            live.gate_tasks.discard(task)

    async def _instance(self, live: LiveObject) -> Any:
        if live.instance is not None:
            return live.instance
        cls = self.runtime.classes().get(live.class_name)
        if cls is None:
            raise LookupError(
                f"Worker {self.runtime.worker!r} ({self.runtime.options.get('main')}) defines no "
                f"class {live.class_name!r}; define it or correct durable_objects class_name")
        env = self.runtime.env
        if cls.__init__ is object.__init__:  # type: ignore[misc]  # the class, not an instance: does it take (state, env)?
            instance = cls()
        else:
            instance = cls(live.state, env)
        if getattr(instance, "ctx", None) is None:
            instance.ctx = live.state
        if getattr(instance, "env", None) is None:
            instance.env = env
        await live.drain_blockers()
        live.instance = instance
        return instance

    async def _dispatch(self, live: LiveObject, instance: Any, kind: str, method: str,
                        body: Any) -> Any:
        cls_name = type(instance).__name__
        if kind == "fetch":
            from edgelet.runtime.entrypoints import call_handler
            from edgelet.runtime.http_types import drained, request_from_wire, response_to_wire
            fn = getattr(instance, "fetch", None)
            if not callable(fn):
                raise AttributeError(
                    f"Durable Object class {cls_name} has no fetch() method; define "
                    f"`async def fetch(self, request)` or call its methods over RPC")
            return response_to_wire(await drained(await call_handler(fn, request_from_wire(body))))
        if kind == "websocket":
            from edgelet.bindings.durable_objects.isolate.websockets import deliver
            return await deliver(live, instance, method, body)
        if kind == "alarm":
            from edgelet.runtime.entrypoints import call_handler
            fn = getattr(instance, "alarm", None)
            if not callable(fn):
                raise AttributeError(
                    f"Durable Object class {cls_name} has an alarm set but no alarm() method; "
                    f"define `async def alarm(self)` or delete the alarm")
            retry, final, now_ms = alarm_body(body)
            storage = live.storage
            _, served = storage.alarm_due(now_ms)
            storage.serving_alarm = served if isinstance(served, int) else None
            try:
                async with asyncio.timeout(self.alarm_timeout):
                    await call_handler(fn, AlarmInfo(retry))
            except BaseException as exc:
                if final:  # no retry follows: the alarm is gone, as on Cloudflare
                    storage.alarm_done(served)
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(
                        f"alarm() of Durable Object {cls_name} {live.state.id.name or live.id_hex} "
                        f"ran longer than {self.alarm_timeout:g} s, the wall-time limit of an alarm "
                        f"handler (15 minutes, as on Cloudflare; EDGELET_DO_ALARM_TIMEOUT), and was "
                        f"cancelled; it is retried like an alarm that raised. Split long work over "
                        f"several alarms (set the next one before returning)") from None
                raise
            finally:
                storage.serving_alarm = None
            storage.alarm_done(served)
            return None
        if method.startswith("_"):
            raise AttributeError(
                f"{cls_name}.{method} is private (its name starts with '_'); Durable Object RPC "
                f"reaches public methods only")
        attr = getattr(instance, method, _MISSING)
        if attr is _MISSING:
            public = sorted(n for n in dir(type(instance)) if not n.startswith("_")
                            and callable(getattr(type(instance), n, None))
                            and n not in ("fetch", "alarm"))
            raise AttributeError(
                f"Durable Object class {cls_name} has no method {method!r} "
                f"(its public methods: {', '.join(public) or 'none'})")
        if kind == "get":
            if callable(attr):
                raise TypeError(f"{cls_name}.{method} is a method; call it: "
                                f"`await stub.{method}(...)`")
            result = attr
        else:
            if not callable(attr):
                raise TypeError(f"{cls_name}.{method} is a {type(attr).__name__}, not a method; "
                                f"read it with `await stub.{method}`")
            args, kwargs = wire.loads(body)
            result = attr(*args, **kwargs)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result is not None and type(result) not in _PLAIN_RESULTS:
            check_rpc_value(result, lambda: f"the value {cls_name}.{method}"
                                            f"{'' if kind == 'get' else '()'} of Durable Object "
                                            f"{live.state.id.name or live.id_hex} returned")
        try:
            return wire.dumps(result)
        except Exception as exc:
            raise TypeError(
                f"{cls_name}.{method}() returned a {type(result).__name__}, which cannot be sent "
                f"back to the caller (it cannot be pickled: {exc}); return plain data") from None

    # -- eviction -----------------------------------------------------------------------
    def _arm_sweep(self) -> None:
        if self._sweep is None and self.objects:
            delay = max(self.idle_timeout / 2, 0.01)
            self._sweep = asyncio.get_running_loop().call_later(delay, self._do_sweep)

    def _do_sweep(self) -> None:
        self._sweep = None
        now = asyncio.get_running_loop().time()
        evicted = 0
        for key, live in list(self.objects.items()):
            if live.idle and now - live.last_used >= self.idle_timeout:
                self.evict(key)
                evicted += 1
        if evicted:
            trim_memory()
        self._arm_sweep()

    def evict(self, key: str) -> None:
        live = self.objects.pop(key, None)
        if live is None:
            return
        live.instance = None
        if live.sockets:  # the host keeps them open; the next event rebuilds the object
            self.hibernated.add(key)
        self._close_storage(key, live.storage)
        log.debug("evicted idle Durable Object %s", key)

    # -- inspection (control API, test handle) -----------------------------------------------
    def _peek(self, ns: str, id_hex: str) -> tuple[DurableObjectStorage | None, bool]:
        """The object's storage without building the object: (storage, opened_here)."""
        key = f"{ns}/{id_hex}"
        live = self.objects.get(key)
        if live is not None:
            return live.storage, False
        path = self.db_path(ns, id_hex)
        if path is not None and not path.exists():
            return None, False
        if path is None and key not in self.snapshots:
            return None, False
        return self.open_storage(ns, id_hex), True

    def dump(self, payload: list[Any]) -> bytes:
        """Every key-value pair, pickled (for the host-side test handle, which unpickles)."""
        ns, id_hex = payload[0], check_id(payload[1], where="storage dump")
        storage, opened = self._peek(ns, id_hex)
        if storage is None:
            return wire.dumps({})
        try:
            rows = storage._db().execute(f"SELECT key, value FROM {KV_TABLE} ORDER BY key").fetchall()
            return wire.dumps({k: wire.loads(v) for k, v in rows})
        finally:
            if opened:
                self._close_storage(f"{ns}/{id_hex}", storage)

    def inspect(self, payload: list[Any]) -> dict[str, Any]:
        """Keys with values shown as JSON where they are JSON, SQL tables with row counts."""
        ns, id_hex, limit = payload[0], check_id(payload[1], where="inspect"), int(payload[2])
        storage, opened = self._peek(ns, id_hex)
        if storage is None:
            return {"keys": [], "key_count": 0, "truncated": False, "tables": [], "size": 0,
                    "live": False}
        try:
            conn = storage._db()
            count = conn.execute(f"SELECT count(*) FROM {KV_TABLE}").fetchone()[0]
            keys = []
            for key, raw in conn.execute(f"SELECT key, value FROM {KV_TABLE} ORDER BY key LIMIT ?",
                                         (limit,)):
                keys.append({"key": key, **describe_value(raw)})
            tables = []
            for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                    "'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name"):
                quoted = '"' + name.replace('"', '""') + '"'
                rows = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
                tables.append({"name": name, "rows": rows})
            size = storage.sql.databaseSize
            return {"keys": keys, "key_count": count, "truncated": count > len(keys),
                    "tables": tables, "size": size, "live": not opened}
        finally:
            if opened:
                self._close_storage(f"{ns}/{id_hex}", storage)


    def query(self, payload: list[Any]) -> dict[str, Any]:
        """Run SQL from the explorer / control API in an object's database, as
        ``ctx.storage.sql.exec`` would: ``{columns, rows, rows_written}``, or ``{error}``
        carrying SQLite's message (bad SQL is the caller's mistake, not a failure here)."""
        ns, id_hex = payload[0], check_id(payload[1], where="sql query")
        sql, params = payload[2], list(payload[3] or [])
        storage, opened = self._peek(ns, id_hex)
        if storage is None:
            raise LookupError(f"Durable Object {id_hex} in {ns} has no storage yet")
        try:
            cursor = storage.sql.exec(sql, *params)
            rows = [[_cell(v) for v in row] for row in cursor.raw()]
            return {"columns": cursor.columnNames, "rows": rows, "rows_written": cursor.rowsWritten}
        except (sqlite3.Error, ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: a transaction is open
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            if opened:
                self._close_storage(f"{ns}/{id_hex}", storage)


def alarm_body(body: Any) -> tuple[int, bool, int | None]:
    """The alarm event's body: ``[retry, final, host_now_ms]`` (an int retry count from an
    older host): ``final`` when no retry follows a failure, the host's clock for "is it due"."""
    if isinstance(body, (list, tuple)) and len(body) == 3:
        return int(body[0] or 0), bool(body[1]), None if body[2] is None else int(body[2])
    return int(body or 0), False, None


def _alarm_not_due(live: LiveObject, body: Any) -> dict[str, Any] | None:
    """A wake-up the object's own alarm row does not back (deleted, moved later, or written
    by a transaction a kill -9 cut short): the host's answer, with alarm() not run."""
    _, _, now_ms = alarm_body(body)
    if now_ms is None:
        return None
    due, when = live.storage.alarm_due(now_ms)
    if due:
        return None
    return {"ran": False, "alarm": when}


class _Expired(Exception):
    """A call inside the isolate ran past ``call_timeout`` (turned into a TimeoutError)."""


def _expire(waiter: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    """``call_timeout`` passed: the caller stops waiting and the event is cancelled (it
    would otherwise hold or queue for its object's gate for good)."""
    if not waiter.done():
        waiter.set_exception(_Expired())
        task.cancel()


def _relay(waiter: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    """``asyncio.shield`` for one event task, for less: the caller awaits ``waiter``, so
    cancelling the caller leaves the event running; its outcome is then dropped."""
    if waiter.done():  # the caller gave up, or call_timeout passed
        if not task.cancelled():
            task.exception()  # retrieved: not logged as "never retrieved"
    elif task.cancelled():
        waiter.cancel()
    elif task.exception() is not None:
        waiter.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        waiter.set_result(task.result())


def _cell(value: Any) -> Any:
    """A SQL value as JSON can carry it (a BLOB as ``x'..'`` hex, as SQLite writes one)."""
    return f"x'{value.hex()}'" if isinstance(value, bytes) else value


def describe_value(raw: bytes) -> dict[str, Any]:
    """A stored value for people: itself when JSON can show it, else its repr."""
    try:
        value = wire.loads(raw)
    except Exception as exc:
        return {"type": "undecodable", "value": None, "error": f"{type(exc).__name__}: {exc}",
                "size": len(raw)}
    try:
        json.dumps(value)
        shown: Any = value
    except (TypeError, ValueError):
        shown = repr(value)
        if len(shown) > 2000:
            shown = shown[:1997] + "..."
    return {"type": type(value).__name__, "value": shown, "size": len(raw)}
