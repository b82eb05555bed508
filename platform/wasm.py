"""Wasm Workers: a ``.wasm`` ``main`` runs under wasmtime, in the host process, off the loop.

``WasmWorker`` offers the host the interface of :class:`edgelet.isolates.Isolate` (start,
invoke, stop, restart, ``info``, ``restarts``, ``broken``), so routing, service bindings and
the control API treat both kinds of Worker alike.

Why threads in the host process rather than a subprocess per Worker: Wasm is sandboxed by
construction (it can touch only its own linear memory and the imports we give it), so the
process boundary that contains Python Workers would add a serialisation and a socket round
trip to every request and buy no isolation. Calls that run Wasm release the GIL, so a long
computation runs beside the event loop (and beside other Wasm requests, on other cores).
CPU time is bounded by epoch interruption, memory by the Store's limiter, and a request that
traps takes only its own instance with it.

The pieces: :mod:`edgelet.wasm_engine` (engine, epoch ticker, compile cache),
:mod:`edgelet.wasm_store` and :mod:`edgelet.wasm_capi` (the raw C API on the hot path),
:mod:`edgelet.wasm_abi` (stdio and the ``edgelet`` host functions), :mod:`edgelet.wasm_cgi`
(the request/response contract).
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Coroutine

import wasmtime

from edgelet import wasm_capi as C
from edgelet.isolates import IsolateError, IsolateStartError
from edgelet.wasm_abi import HOST_FUNCTIONS, CallContext, Services, linker, set_context
from edgelet.wasm_cgi import (
    MalformedResponse,
    base_environ,
    cgi_environ,
    http_request_bytes,
    parse_response,
    var_text,
)
from edgelet.wasm_engine import (
    TICK_MS,
    LoadedModule,
    ModuleLoadError,
    engine,
    load_module,
    ticker,
)
from edgelet.wasm_store import EXTERN_FUNC, Slots1, Slots2, Store

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import WorkerConfig

log = logging.getLogger("edgelet.wasm")

_PAGE = 65536
_WASI = "wasi_snapshot_preview1"
#: epoch ticks granted while a module is instantiated (its start function, _initialize)
_INIT_MS = 10_000
#: a pool thread busy this long (seconds) with others waiting: start another
_GROW_AFTER = 0.002


@dataclass
class _Program:
    """A compiled module, linked once, ready to instantiate cheaply per request."""

    loaded: LoadedModule
    pre: wasmtime.InstancePre
    #: "command" (CGI over stdio, a fresh instance per request) or "reactor" (exported fetch)
    mode: str
    imports: list[str]


class _Threads:
    """A Worker's pool threads and their queue (replaced whole on stop/restart)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        #: per thread: when it took its current job (0.0 while idle)
        self.busy_since: list[float] = []
        self.idle = 0
        self.grow_pending = False


@dataclass
class _Instance:
    """A live reactor instance, reused until it fails."""

    store: Store
    fetch: Any  # wasmtime_func_t
    alloc: Any  # wasmtime_func_t


class WasmWorker(Services):
    """One Wasm Worker: its compiled module, a small thread pool and (reactors) live instances."""

    def __init__(self, worker: "WorkerConfig", host: Any) -> None:
        self.worker = worker
        self.host = host
        self.name = worker.name
        self.path = Path(worker.main)
        self.cpu_ms = worker.limits.cpu_ms
        self.memory_mb = worker.limits.memory_mb
        self.request_timeout = worker.limits.request_timeout_ms / 1000.0
        self.pid: int | None = os.getpid()
        self.restarts = 0
        self.info: dict[str, Any] = {}
        self.broken: IsolateStartError | None = None
        self.kv_bindings = frozenset(d.binding for d in worker.decls("kv"))
        merged = {**worker.vars, **worker.secrets}
        self._env_base = base_environ(merged)
        self.var_values = {k: var_text(v).encode("utf-8") for k, v in merged.items()}
        self._program: _Program | None = None
        self._pool_threads = _Threads()
        self._starting: asyncio.Future[dict[str, Any]] | None = None
        self._instances: list[_Instance] = []
        self._instances_lock = threading.Lock()
        self._max_threads = max(4, 2 * (os.cpu_count() or 2))
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._engine_ptr = engine().ptr()
        self._argv_keep = (ctypes.c_char_p * 1)(self.path.name.encode())
        self._argv = ctypes.cast(self._argv_keep, C.char_pp)

    # -- life cycle --------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        """Compile (or load from the cache), link and test-instantiate the module."""
        if self._program is not None:
            return self.info
        if self._starting is None or (self._starting.done() and self._starting.exception()):
            self._starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._starting)

    async def _start(self) -> dict[str, Any]:
        self.loop = asyncio.get_running_loop()
        try:
            program = await self.loop.run_in_executor(None, self._load)
        except IsolateStartError as exc:
            self.broken = exc
            self._starting = None
            raise
        self._program = program
        self.broken = None
        loaded = program.loaded
        self.info = {"handlers": ["fetch"],
                     "wasm": {"mode": program.mode, "sha256": loaded.sha256, "bytes": loaded.size,
                              "cached": loaded.cached, "load_ms": round(loaded.load_ms, 2),
                              "imports": program.imports}}
        log.debug("Wasm Worker %r ready: %s module, %d bytes, sha256 %s, %s in %.1f ms", self.name,
                  program.mode, loaded.size, loaded.sha256[:12],
                  "loaded from the compile cache" if loaded.cached else "compiled", loaded.load_ms)
        return self.info

    async def stop(self) -> None:
        """Forget the module and its instances; requests still running finish on their own."""
        self._program = None
        self._starting = None
        with self._instances_lock:
            idle, self._instances = self._instances, []
        for inst in idle:  # idle instances belong to no thread: safe to delete here
            inst.store.close()
        old, self._pool_threads = self._pool_threads, _Threads()
        for _ in old.workers:
            old.jobs.put(None)  # each thread ends once the jobs queued before are done

    async def restart(self) -> dict[str, Any]:
        """Load the module from disk again (after a rebuild)."""
        await self.stop()
        return await self.start()

    # -- loading (runs on a pool thread) ------------------------------------------------
    def _start_error(self, problem: str) -> IsolateStartError:
        return IsolateStartError(f"Worker {self.name!r}: {problem}")

    def _load(self) -> _Program:
        try:
            loaded = load_module(self.path, getattr(self.host, "state_dir", None))
        except ModuleLoadError as exc:
            raise self._start_error(str(exc)) from None
        module = loaded.module
        mode = self._mode(module)
        imports = self._check_imports(module)
        try:
            pre = linker().instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise self._start_error(f"{self.path} cannot be linked: {_first_line(exc)}; it may "
                                    f"import only WASI preview 1 and edgelet.{{"
                                    f"{', '.join(HOST_FUNCTIONS)}}} with the signatures in "
                                    f"docs/wasm.md") from None
        program = _Program(loaded, pre, mode, imports)
        # instantiate once now, so a module that cannot start fails at start-up, not per request
        try:
            instance = self._instantiate(program, starting=True)
        except IsolateError as exc:
            raise self._start_error(f"{self.path} failed to instantiate: {exc}") from None
        if instance is not None:
            with self._instances_lock:
                self._instances.append(instance)
        return program

    def _mode(self, module: wasmtime.Module) -> str:
        exports = {e.name: e.type for e in module.exports}
        fetch = exports.get("fetch")
        if fetch is not None:
            problems = []
            if not _sig(fetch, 2, ["i64"]):
                problems.append("fetch(request_ptr: i32, request_len: i32) -> i64")
            if not _sig(exports.get("alloc"), 1, ["i32"]):
                problems.append("alloc(size: i32) -> i32")
            if not isinstance(exports.get("memory"), wasmtime.MemoryType):
                problems.append("its linear memory as \"memory\"")
            if problems:
                raise self._start_error(
                    f"{self.path} exports fetch, so it is a reactor module, but it does not "
                    f"export {' and '.join(problems)}; export them (see docs/wasm.md, Reactor "
                    f"modules), or remove the fetch export and use _start (CGI)")
            return "reactor"
        start = exports.get("_start")
        if start is not None:
            if not _sig(start, 0, []):
                raise self._start_error(f"{self.path} exports _start with the wrong signature; "
                                        f"it must take and return nothing")
            return "command"
        shown = ", ".join(sorted(exports)) or "nothing"
        raise self._start_error(
            f"{self.path} has no handler: a Wasm Worker exports _start (a WASI command that "
            f"reads the request CGI-style and writes the response to stdout) or fetch + alloc "
            f"+ memory (a reactor); this module exports {shown}. Build it as a WASI preview 1 "
            f"command (e.g. cargo build --target wasm32-wasip1), see docs/wasm.md")

    def _check_imports(self, module: wasmtime.Module) -> list[str]:
        names = []
        for imp in module.imports:
            names.append(f"{imp.module}.{imp.name}")
            if imp.module == _WASI or (imp.module == "edgelet" and imp.name in HOST_FUNCTIONS):
                continue
            hint = (f"edgelet provides {', '.join(HOST_FUNCTIONS)}" if imp.module == "edgelet"
                    else f"a Wasm Worker may import only {_WASI} and edgelet functions")
            raise self._start_error(f"{self.path} imports {imp.module}.{imp.name}, which edgelet "
                                    f"does not provide ({hint}); remove that import")
        return names

    # -- instances (pool threads) -------------------------------------------------------
    def _new_store(self, env: dict[bytes, bytes], budget_ms: float) -> Store:
        return Store(self._engine_ptr, self.memory_mb * 1024 * 1024,
                      int(budget_ms / TICK_MS) + 1, self._argv, env)

    def _instantiate(self, program: _Program, *, starting: bool = False) -> _Instance | None:
        """A reactor instance (``_initialize`` run), or a dry run for a command module."""
        store = self._new_store(self._env_base, _INIT_MS)
        ctx = CallContext(self, store.cptr, stdout_is_log=True, budget_s=_INIT_MS / 1000,
                          deadline=time.monotonic() + _INIT_MS / 1000)
        keep = False
        set_context(ctx)
        ticker().enter()
        try:
            instance = store.instantiate(program.pre)
            ctx.memory = store.memory
            if program.mode == "command":
                return None
            init = store.export(instance, b"_initialize")
            if init is not None and init.kind == EXTERN_FUNC:
                store.call(init.of.func, Slots1(), 0)
            if ctx.fault:
                raise IsolateError(f"Wasm Worker {self.name!r}: {ctx.fault}", 500)
            fetch, alloc = store.export(instance, b"fetch"), store.export(instance, b"alloc")
            keep = True
            return _Instance(store, fetch.of.func, alloc.of.func)
        except IsolateError:
            raise
        except Exception as exc:
            raise self._failure(exc, ctx, store, _INIT_MS, "initialising a new instance",
                                starting=starting) from None
        finally:
            ticker().leave()
            set_context(None)
            ctx.flush_logs()
            if not keep:
                store.close()

    # -- requests --------------------------------------------------------------------------
    async def invoke(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Run the fetch handler on a pool thread; failures are IsolateErrors that say which."""
        if method != "fetch":
            raise IsolateError(f"Wasm Worker {self.name!r} has no {method} handler: Wasm Workers "
                               f"answer HTTP requests (fetch) only", 500)
        if self._program is None:
            await self.start()
        program = self._program
        assert program is not None
        limit = self.request_timeout if timeout is None else timeout
        fut = self.loop.create_future()
        pool = self._pool_threads
        pool.jobs.put((program, args[0], limit, fut))
        if pool.idle == 0:
            if not pool.workers:
                self._spawn(pool)
            elif not pool.grow_pending and len(pool.workers) < self._max_threads:
                pool.grow_pending = True
                self.loop.call_later(_GROW_AFTER, self._maybe_grow, pool)
        # the thread stops itself at the deadline; this margin only covers a stuck queue
        expiry = self.loop.call_later(limit + 5.0, _expire, fut, self.name, limit)
        try:
            return await fut
        finally:
            expiry.cancel()

    # Why our own threads rather than loop.run_in_executor: the executor's future chaining
    # and wait_for's task cost ~20 µs a request, half of a hello-world's whole Wasm run.
    #
    # Why one thread until proven slow: the Python glue of a request holds the GIL, so
    # several threads running short requests only hand the GIL around (measured: 4 threads
    # serve a hello-world at half the rate of 1). A second thread starts only when every
    # thread has been on its current request for _GROW_AFTER while others wait: a long
    # computation, or a KV call in flight, never holds up the queue for longer than that.
    def _spawn(self, pool: "_Threads") -> None:
        index = len(pool.workers)
        pool.busy_since.append(0.0)
        thread = threading.Thread(target=self._work, args=(pool, index),
                                  name=f"wasm-{self.name}-{index}", daemon=True)
        pool.workers.append(thread)
        thread.start()

    def _maybe_grow(self, pool: "_Threads") -> None:
        pool.grow_pending = False
        if pool is not self._pool_threads or pool.jobs.empty() or pool.idle:
            return
        if len(pool.workers) >= self._max_threads:
            return
        now = time.perf_counter()
        if all(since and now - since >= _GROW_AFTER for since in pool.busy_since):
            self._spawn(pool)
        pool.grow_pending = True  # look again while a backlog remains
        self.loop.call_later(_GROW_AFTER, self._maybe_grow, pool)

    def _work(self, pool: "_Threads", index: int) -> None:
        jobs, loop, busy = pool.jobs, self.loop, pool.busy_since
        while True:
            pool.idle += 1
            job = jobs.get()
            pool.idle -= 1
            if job is None:
                return
            busy[index] = time.perf_counter()
            program, request, limit, fut = job
            try:
                result, error = self._serve(program, request, limit), None
            except BaseException as exc:  # handed to the awaiting coroutine
                result, error = None, exc
            busy[index] = 0.0
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _serve(self, program: _Program, request: list[Any], limit_s: float) -> list[Any]:
        method, url, headers, body = request
        body = bytes(body or b"")
        budget_ms = min(float(self.cpu_ms), limit_s * 1000)
        deadline = time.monotonic() + limit_s
        ticker().enter()
        try:
            if program.mode == "command":
                return self._run_command(program, method, url, headers, body, budget_ms, deadline)
            return self._run_reactor(program, method, url, headers, body, budget_ms, deadline)
        finally:
            ticker().leave()

    def _run_command(self, program: _Program, method: str, url: str, headers: list[list[str]],
                     body: bytes, budget_ms: float, deadline: float) -> list[Any]:
        env = cgi_environ(method, url, headers, len(body), self._env_base)
        store = self._new_store(env, budget_ms)
        ctx = CallContext(self, store.cptr, stdin=body, budget_s=budget_ms / 1000, deadline=deadline)
        exit_code = 0
        set_context(ctx)
        try:
            instance = store.instantiate(program.pre)
            ctx.memory = store.memory
            start = store.export(instance, b"_start")
            store.call(start.of.func, Slots1(), 0)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except Exception as exc:
            self.restarts += 1
            raise self._failure(exc, ctx, store, budget_ms, "") from None
        finally:
            set_context(None)
            store.close()
            ctx.flush_logs()
        if ctx.fault:
            raise self._fail(f"Wasm Worker {self.name!r}: {ctx.fault}")
        if exit_code != 0:
            tail = " | ".join(ctx.stderr_tail)
            raise self._fail(f"Wasm Worker {self.name!r} exited with code {exit_code} while "
                             f"handling fetch" + (f"; its stderr ended with: {tail}" if tail else ""))
        return self._response(b"".join(ctx.stdout))

    def _run_reactor(self, program: _Program, method: str, url: str, headers: list[list[str]],
                     body: bytes, budget_ms: float, deadline: float) -> list[Any]:
        with self._instances_lock:
            inst = self._instances.pop() if self._instances else None
        if inst is None:
            inst = self._instantiate(program)
            assert inst is not None
        store = inst.store
        ctx = CallContext(self, store.cptr, stdout_is_log=True, budget_s=budget_ms / 1000,
                          deadline=deadline)
        store.set_deadline(int(budget_ms / TICK_MS) + 1)
        ctx.memory = store.memory
        out = b""
        set_context(ctx)
        try:
            request = http_request_bytes(method, url, headers, body)
            slots = Slots2()
            slots[0].i32 = len(request)
            store.call(inst.alloc, slots, 1)
            ptr = slots[0].i32 & 0xFFFFFFFF
            size = store.memory_size() or 0
            if ptr == 0 or ptr + len(request) > size:
                ctx.fail(f"alloc({len(request)}) returned 0x{ptr:x}, which is not a buffer inside "
                         f"the module's {size}-byte memory")
            else:
                ctypes.memmove(store.memory_base() + ptr, request, len(request))
                slots[0].i32 = ptr
                slots[1].i32 = len(request)
                store.call(inst.fetch, slots, 2)
                packed = slots[0].i64 & 0xFFFFFFFFFFFFFFFF
                out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
                size = store.memory_size() or 0
                if out_ptr + out_len > size:
                    ctx.fail(f"fetch returned a response at 0x{out_ptr:x} ({out_len} bytes) "
                             f"outside the module's {size}-byte memory; return "
                             f"(ptr << 32) | len")
                else:
                    out = ctypes.string_at(store.memory_base() + out_ptr, out_len)
        except Exception as exc:
            self.restarts += 1
            failure = self._failure(exc, ctx, store, budget_ms, "")
            store.close()
            raise failure from None
        finally:
            set_context(None)
            ctx.flush_logs()
        if ctx.fault:
            self.restarts += 1  # the instance may be inconsistent: do not reuse it
            store.close()
            raise self._fail(f"Wasm Worker {self.name!r}: {ctx.fault}")
        with self._instances_lock:
            if self._program is program and len(self._instances) < self._max_threads:
                self._instances.append(inst)
                inst = None
        if inst is not None:
            store.close()
        return self._response(out)

    def _response(self, out: bytes) -> list[Any]:
        try:
            return parse_response(out)
        except MalformedResponse as exc:
            raise self._fail(f"Wasm Worker {self.name!r} wrote a malformed response: {exc}. A "
                             f"response is header lines ('Name: value', e.g. 'Content-Type: "
                             f"text/plain'), a blank line, then the body (docs/wasm.md)") from None

    def _fail(self, message: str, status: int = 500) -> IsolateError:
        log.warning("%s", message)
        return IsolateError(message, status)

    def _failure(self, exc: BaseException, ctx: CallContext, store: Store, budget_ms: float,
                 doing: str, *, starting: bool = False) -> IsolateError:
        """Name what went wrong: CPU limit, memory limit, a trap, or a guest bug we caught."""
        problem, status = self._problem(exc, ctx, store, budget_ms)
        if starting:
            return IsolateError(f"it {problem}", status)
        where = f" (while {doing})" if doing else ""
        return self._fail(f"Wasm Worker {self.name!r} {problem}{where}; the next request gets a "
                          f"fresh instance", status)

    def _problem(self, exc: BaseException, ctx: CallContext, store: Store,
                 budget_ms: float) -> tuple[str, int]:
        if ctx.fault:
            return f"failed: {ctx.fault}", 500
        cap = self.memory_mb * 1024 * 1024
        if not isinstance(exc, wasmtime.Trap):
            text = _first_line(exc)
            if "exceeds memory limits" in text or "memory minimum size" in text:
                return (f"ran out of memory: {text} (the limit is {self.memory_mb} MiB, "
                        f"limits.memory_mb); raise limits.memory_mb"), 500
            return f"failed: {type(exc).__name__}: {text}", 500
        code = exc.trap_code
        if code == wasmtime.TrapCode.INTERRUPT:
            if budget_ms >= self.cpu_ms:
                return (f"exceeded its CPU limit of {self.cpu_ms} ms (limits.cpu_ms) and was "
                        f"stopped (an endless loop?)"), 500
            return (f"ran past its request timeout of {budget_ms / 1000:g} s "
                    f"(request_timeout_ms) and was stopped"), 504
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return "ran out of fuel", 500
        used = store.memory_size()
        if used is not None and used >= cap - max(cap // 8, _PAGE):
            return (f"ran out of memory: its memory reached {used / 1048576:.1f} MiB of its "
                    f"{self.memory_mb} MiB limit (limits.memory_mb), a memory.grow was refused "
                    f"and the module then trapped ({_first_line(exc)}); raise limits.memory_mb "
                    f"or use less memory"), 500
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return "overflowed its stack (runaway recursion?)", 500
        frames = _frames(exc)
        usage = f"; memory in use: {used / 1048576:.1f} of {self.memory_mb} MiB" if used else ""
        return (f"trapped: {_first_line(exc)}" + (f" (in {frames})" if frames else "")
                + usage), 500

    # -- Services: what host functions call (from pool threads) ----------------------------
    def kv_call(self, binding: str, op: str, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return self._kv(binding, op, *args, **kwargs)

    async def _kv(self, binding: str, op: str, *args: Any, **kwargs: Any) -> Any:
        handle = self.host.plugin("kv").namespace(self.name, binding)
        if inspect.isawaitable(handle):
            handle = await handle
        return await getattr(handle, op)(*args, **kwargs)

    def log_line(self, level: str, text: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._emit, level, text)
        except RuntimeError:  # the loop is closed: the platform is shutting down
            pass

    def _emit(self, level: str, text: str) -> None:
        emit = getattr(self.host, "_on_worker_log", None)
        if emit is not None:
            emit(self.name, level, text)
        else:
            logging.getLogger("edgelet.worker").info("[%s] %s", self.name, text)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():  # expired or cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _expire(fut: asyncio.Future[Any], name: str, limit: float) -> None:
    if not fut.done():
        fut.set_exception(IsolateError(f"Wasm Worker {name!r} did not answer fetch within "
                                       f"{limit:g} s (request_timeout_ms); the request was "
                                       f"abandoned", 504))


def _sig(ty: Any, nparams: int, results: list[str]) -> bool:
    if not isinstance(ty, wasmtime.FuncType):
        return False
    return (len(ty.params) == nparams and all(str(p) == "i32" for p in ty.params)
            and [str(r) for r in ty.results] == results)


def _first_line(exc: BaseException) -> str:
    """The cause of a wasmtime error: the text under "Caused by:", else its first line."""
    text = exc.message if isinstance(exc, wasmtime.Trap) else str(exc)
    if "Caused by:" in text:
        text = text.split("Caused by:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else type(exc).__name__


def _frames(trap: wasmtime.Trap) -> str:
    names = []
    try:
        for frame in trap.frames[:3]:
            names.append(frame.func_name or f"func {frame.func_index}")
    except Exception:
        return ""
    return " <- ".join(names)
