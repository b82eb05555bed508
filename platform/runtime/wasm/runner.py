"""Wasm Workers, inside their isolate: a ``.wasm`` ``main`` runs under wasmtime there.

A Wasm Worker is an isolate like a Python Worker (its own process, forked by the fork
server, spoken to over the channel); :class:`edgelet.runtime.isolate.Runtime` hands a
``.wasm`` main to :class:`WasmRunner` instead of importing a script. Why a process rather
than threads in the host, although Wasm is sandboxed by construction: the Python glue of
every request (building the CGI environment, parsing the response, host calls) holds a GIL,
and in the host that GIL and core belong to the HTTP server. In an isolate the host only
forwards bytes, as for a Python Worker, and a crash of wasmtime itself takes only the
isolate down.

Within the isolate, a module runs on the event loop's thread, or, if it calls KV, on a few
pool threads (edgelet.runtime.wasm.threads; calls into Wasm release the GIL), so that the loop
stays free to bridge its host calls to the host. CPU time is bounded by epoch
interruption, memory by the Store's limiter, and a request that traps takes only its own
instance with it.

The pieces: :mod:`edgelet.runtime.wasm.engine` (engine, instance pool, epoch ticker, compile
cache), :mod:`edgelet.runtime.wasm.native` (the C extension that serves a request in one call),
:mod:`edgelet.runtime.wasm.store` and :mod:`edgelet.runtime.wasm.capi` (the raw C API through ctypes),
:mod:`edgelet.runtime.wasm.abi` (stdio and the ``edgelet`` host functions), :mod:`edgelet.runtime.wasm.cgi`
(the request/response contract), :mod:`edgelet.runtime.wasm.threads` (threads for KV callers).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from edgelet.channel import NOT_NOW
from edgelet.runtime.wasm import capi as C
from edgelet.runtime.wasm import native as wasm_native
from edgelet.runtime.wasm.abi import (
    HOST_FUNCTIONS,
    MAX_LOG_LINE,
    RESPONSE_TOO_BIG,
    CallContext,
    Services,
    linker,
    set_context,
)
from edgelet.runtime.wasm.cgi import (
    MalformedResponse,
    base_environ,
    cgi_environ,
    http_request_bytes,
    parse_response,
    var_text,
)
from edgelet.runtime.wasm.engine import (
    TICK_MS,
    LoadedModule,
    ModuleLoadError,
    engine,
    load_module,
    ticker,
    use_isolate_pool,
)
from edgelet.runtime.wasm.store import EXTERN_FUNC, Slots1, Store
from edgelet.runtime.wasm.threads import ThreadPool

_PAGE = 65536
#: the environment of a module that cannot read one
_NO_ENV: dict[bytes, bytes] = {}
_perf_counter = time.perf_counter
_WASI = "wasi_snapshot_preview1"
#: epoch ticks granted while a module is instantiated (its start function, _initialize)
_INIT_MS = 10_000


class WasmStartError(Exception):
    """The module cannot serve (not Wasm, bad exports or imports, fails to instantiate).

    Raised from ``init``; the host reports it as the Worker's IsolateStartError.
    """


class WasmRequestError(Exception):
    """One request failed because of the module (trap, limit, bad output); ``status`` is its
    HTTP status. The message names what happened and what to do."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Program:
    """A compiled module, linked once, ready to instantiate cheaply per request."""

    loaded: LoadedModule
    pre: wasmtime.InstancePre
    #: "command" (CGI over stdio, a fresh instance per request) or "reactor" (exported fetch)
    mode: str
    imports: list[str]
    #: run requests on the isolate's event-loop thread (the module imports no KV function,
    #: so it never needs the loop while it runs); else on pool threads
    on_loop: bool
    #: a command module served by the C extension (edgelet.runtime.wasm.native): the address of
    #: its InstancePre, linked with the extension's stdio; 0 for the Python path
    native_pre: int = 0
    #: the module imports environ_get: without it, it cannot read the CGI environment,
    #: and building one per request would be wasted
    reads_env: bool = True
    #: the module imports edgelet.* functions, which need a CallContext per request
    host_calls: bool = True


@dataclass
class _Instance:
    """A live reactor instance, reused until it fails."""

    store: Store
    fetch: Any  # wasmtime_func_t
    alloc: Any  # wasmtime_func_t


class WasmRunner(Services):
    """The Wasm Worker of this isolate: its compiled module, pool threads and (reactors)
    live instances. ``runtime`` is the isolate's Runtime: its channel carries logs and KV
    calls to the host, and ``runtime.env`` holds the Worker's KV bindings."""

    def __init__(self, spec: dict[str, Any], runtime: Any) -> None:
        limits = spec.get("limits") or {}
        self.runtime = runtime
        self.name = spec["name"]
        self.path = Path(spec["main"])
        self.state_dir = Path(spec["state_dir"]) if spec.get("state_dir") else None
        self.cpu_ms = int(limits.get("cpu_ms") or os.environ.get("EDGELET_CPU_MS", "30000"))
        self.memory_mb = int(limits.get("memory_mb") or os.environ.get("EDGELET_MEMORY_MB", "128"))
        self._memory_bytes = self.memory_mb * 1024 * 1024
        self.request_timeout = float(limits.get("request_timeout_ms") or 30_000) / 1000.0
        self.kv_bindings = frozenset(name for name, b in spec.get("bindings", {}).items()
                                     if b.get("kind") == "kv")
        merged = {**spec.get("vars", {}), **spec.get("secrets", {})}
        self._env_base = base_environ(merged)
        self.var_values = {k: var_text(v).encode("utf-8") for k, v in merged.items()}
        self._program: _Program | None = None
        self._threads: ThreadPool | None = None
        self._instances: list[_Instance] = []
        self._instances_lock = threading.Lock()
        self._max_threads = max(4, 2 * (os.cpu_count() or 2))
        slots = int(limits.get("instance_slots") or 0)
        if slots:  # in an isolate: the host sized its address space for this pool
            use_isolate_pool(slots, self._memory_bytes)
            # live instances: a request per thread, an idle reactor instance per thread,
            # one being initialised
            self._max_threads = max(1, min(self._max_threads, (slots - 1) // 2))
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._loop_thread = 0
        self._loop_clock = 0
        #: seconds the loop thread spent in Wasm, and the start of the run in progress
        self._wasm_time = 0.0
        self._wasm_since: float | None = None
        _one_malloc_arena()
        self._engine_ptr = engine().ptr()
        self._ticker = ticker()
        self._parse_fast = wasm_native.response_parser()
        self._engine_addr = wasm_native.address(self._engine_ptr)
        self._argv0 = self.path.name.encode()
        self._argv_keep = (ctypes.c_char_p * 1)(self.path.name.encode())
        self._argv = ctypes.cast(self._argv_keep, C.char_pp)

    # -- loading (init, on the isolate's loop: nothing else to serve yet) -------------------
    def load(self) -> dict[str, Any]:
        """Compile (or load from the cache), link and test-instantiate the module."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._loop_clock = time.pthread_getcpuclockid(self._loop_thread)
        program = self._program = self._load()
        loaded = program.loaded
        self.runtime.log("debug", f"Wasm Worker {self.name!r} ready: {program.mode} module, "
                                  f"{loaded.size} bytes, sha256 {loaded.sha256[:12]}..., "
                                  f"{'loaded from the compile cache' if loaded.cached else 'compiled'}"
                                  f" in {loaded.load_ms:.1f} ms")
        return {"handlers": ["fetch"], "classes": [], "entrypoints": [],
                "wasm": {"mode": program.mode, "sha256": loaded.sha256, "bytes": loaded.size,
                         "cached": loaded.cached, "load_ms": round(loaded.load_ms, 2),
                         "imports": program.imports,
                         "runs_on": "event loop" if program.on_loop else "threads",
                         "native": bool(program.native_pre)}}

    def _load(self) -> _Program:
        try:
            loaded = load_module(self.path, self.state_dir)
        except ModuleLoadError as exc:
            raise WasmStartError(str(exc)) from None
        module = loaded.module
        mode = self._mode(module)
        imports = self._check_imports(module)
        native = mode == "command" and wasm_native.available()
        try:
            pre = (wasm_native.linker() if native else linker()).instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise WasmStartError(f"{self.path} cannot be linked: {_first_line(exc)}; it may "
                                    f"import only WASI preview 1 and edgelet.{{"
                                    f"{', '.join(HOST_FUNCTIONS)}}} with the signatures in "
                                    f"docs/wasm.md") from None
        on_loop = not any(name.startswith("edgelet.kv_") for name in imports)
        program = _Program(loaded, pre, mode, imports, on_loop,
                           wasm_native.address(pre.ptr()) if native else 0,
                           f"{_WASI}.environ_get" in imports,
                           any(name.startswith("edgelet.") for name in imports))
        # instantiate once now, so a module that cannot start fails at start-up, not per request
        try:
            if native:
                self._ticker.enter()  # the epoch deadline moves only while the ticker runs
                try:
                    self._run_native(program, self._env_base, b"", _INIT_MS,
                                     time.monotonic() + _INIT_MS / 1000, starting=True)
                finally:
                    self._ticker.leave()
                return program
            instance = self._instantiate(program, starting=True)
        except WasmRequestError as exc:
            raise WasmStartError(f"{self.path} failed to instantiate: {exc}") from None
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
                raise WasmStartError(
                    f"{self.path} exports fetch, so it is a reactor module, but it does not "
                    f"export {' and '.join(problems)}; export them (see docs/wasm.md, Reactor "
                    f"modules), or remove the fetch export and use _start (CGI)")
            return "reactor"
        start = exports.get("_start")
        if start is not None:
            if not _sig(start, 0, []):
                raise WasmStartError(f"{self.path} exports _start with the wrong signature; "
                                        f"it must take and return nothing")
            return "command"
        shown = ", ".join(sorted(exports)) or "nothing"
        raise WasmStartError(
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
            raise WasmStartError(f"{self.path} imports {imp.module}.{imp.name}, which edgelet "
                                    f"does not provide ({hint}); remove that import")
        return names

    # -- instances (pool threads) -------------------------------------------------------
    def _new_store(self, env: dict[bytes, bytes], budget_ms: float) -> Store:
        return Store(self._engine_ptr, self._memory_bytes,
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
                raise WasmRequestError(f"Wasm Worker {self.name!r}: {ctx.fault}", 500)
            fetch, alloc = store.export(instance, b"fetch"), store.export(instance, b"alloc")
            keep = True
            return _Instance(store, fetch.of.func, alloc.of.func)
        except WasmRequestError:
            raise
        except Exception as exc:
            raise self._failure(exc, ctx.fault, store.memory_size(), _INIT_MS,
                                "initialising a new instance", starting=starting) from None
        finally:
            ticker().leave()
            set_context(None)
            ctx.flush_logs()
            if not keep:
                store.close()

    # -- requests --------------------------------------------------------------------------
    async def fetch(self, wire: list[Any]) -> list[Any]:
        """Run the module's handler; a failure is a 5xx response that says which.

        Why on the event loop's thread when the module calls no KV: a hand-off to a pool
        thread (and the GIL back) cost more than a hello-world's whole run, and the isolate
        serves this one Worker, so a long request holds up only this Worker's other
        requests, as a CPU-bound Python handler does. A module that imports KV functions
        runs on pool threads, because its host calls wait on this loop.
        """
        answer = self.fetch_now(wire)
        if answer is not NOT_NOW:
            return answer
        program = self._program
        assert program is not None
        if self._threads is None:
            self._threads = ThreadPool(self.name, self.loop, self._max_threads, self._serve)
        try:
            return await self._threads.run(program, wire, self._time_limit())
        except WasmRequestError as exc:
            return _error_wire(exc)

    def fetch_now(self, wire: list[Any]) -> Any:
        """:meth:`fetch` without a coroutine, for a module that runs on the loop's thread
        (the isolate answers it in the channel's reader); else ``channel.NOT_NOW``."""
        program = self._program
        if program is None or not program.on_loop:
            return NOT_NOW
        try:
            return self._serve_on_loop(program, wire)
        except WasmRequestError as exc:
            return _error_wire(exc)

    def _serve_on_loop(self, program: _Program, wire: list[Any]) -> list[Any]:
        """Run a request right here; its time is hidden from the isolate's loop watchdog
        (the epoch deadline bounds it, with a message that names limits.cpu_ms).

        Why wall time (perf_counter) rather than the thread's CPU clock: reading a CPU
        clock is a system call, two per request cost more than a hello-world's Wasm run.
        Wall time is at least the CPU time, so the watchdog can only see less of the loop's
        own CPU, never blame Wasm's on it."""
        self._wasm_since = since = _perf_counter()
        try:
            return self._serve(program, wire, self._time_limit())
        finally:
            self._wasm_time += _perf_counter() - since
            self._wasm_since = None

    def loop_cpu(self) -> float:
        """CPU seconds of the loop thread outside Wasm: what the isolate's watchdog watches
        (read from the watchdog's thread)."""
        cpu = time.clock_gettime(self._loop_clock)
        since = self._wasm_since
        running = time.perf_counter() - since if since is not None else 0.0
        return cpu - self._wasm_time - running

    def _time_limit(self) -> float:
        """Seconds a request may run here: a little under request_timeout_ms, so the module is
        stopped (and the answer says why) before the host gives up on the isolate."""
        return self.request_timeout - min(0.05, self.request_timeout / 4)

    def _serve(self, program: _Program, request: list[Any], limit_s: float) -> list[Any]:
        method, url, headers, body = request
        body = bytes(body or b"")
        budget_ms = min(float(self.cpu_ms), limit_s * 1000)
        deadline = time.monotonic() + limit_s
        epochs = self._ticker
        epochs.enter()
        try:
            if program.native_pre:
                env = (cgi_environ(method, url, headers, len(body), self._env_base)
                       if program.reads_env else _NO_ENV)
                return self._run_native(program, env, body, budget_ms, deadline)
            if program.mode == "command":
                return self._run_command(program, method, url, headers, body, budget_ms, deadline)
            return self._run_reactor(program, method, url, headers, body, budget_ms, deadline)
        finally:
            epochs.leave()

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
            raise self._failure(exc, ctx.fault, store.memory_size(), budget_ms, "") from None
        finally:
            set_context(None)
            store.close()
            ctx.flush_logs()
        if ctx.fault:
            raise self._fail(f"Wasm Worker {self.name!r}: {ctx.fault}")
        if exit_code != 0:
            raise self._exit_failure(exit_code, ctx.stderr_tail)
        return self._response(b"".join(ctx.stdout))

    def _run_native(self, program: _Program, env: dict[bytes, bytes], body: bytes,
                    budget_ms: float, deadline: float, *, starting: bool = False) -> list[Any]:
        """A command module's request in one call to the C extension: the same contract,
        limits and messages as :meth:`_run_command`, at a fifth of the cost. The module's
        ``edgelet.*`` calls are Python callbacks that find the request's context here (its
        store is made in C: they learn its context pointer from their caller)."""
        ctx = None
        if program.host_calls:
            ctx = CallContext(self, None, budget_s=budget_ms / 1000, deadline=deadline)
            set_context(ctx)
        try:
            outcome = wasm_native.run(program.native_pre, self._engine_addr,
                                      self._memory_bytes, int(budget_ms / TICK_MS) + 1,
                                      self._argv0, env, body, call_start=not starting)
        finally:
            if ctx is not None:
                set_context(None)
        fault = ctx.fault if ctx is not None else None
        tail: list[str] = []
        if outcome.stderr or outcome.stderr_dropped or starting:
            tail = self._log_stderr(outcome.stderr, outcome.stderr_dropped,
                                    stdout=outcome.stdout if starting else b"")
        if outcome.error is not None:
            raise self._failure(outcome.error, fault, outcome.memory_bytes or None, budget_ms,
                                "initialising a new instance" if starting else "",
                                starting=starting)
        fault = fault or (RESPONSE_TOO_BIG if outcome.too_big else None)
        if fault:
            raise self._fail(f"Wasm Worker {self.name!r}: {fault}")
        if starting:
            return []
        if outcome.exit_code != 0:
            raise self._exit_failure(outcome.exit_code, tail)
        return self._response(outcome.stdout)

    def _log_stderr(self, stderr: bytes, dropped: int, stdout: bytes = b"") -> list[str]:
        """Send a run's stderr (and, at start-up, stdout) to the log line by line, as the
        Python path's stdio does; returns the last lines, quoted by an exit failure."""
        lines: list[str] = []
        for data in (stderr, stdout):
            if data:
                text = data.decode("utf-8", "replace")
                for line in text.removesuffix("\n").split("\n"):
                    line = line.rstrip("\r")
                    self.log_line("log", line[:MAX_LOG_LINE])
                    if data is stderr:
                        lines.append(line)
        if dropped:
            self.log_line("warn", f"Wasm Worker {self.name!r} wrote {dropped} more bytes to "
                                  f"stderr in this request; they were not logged")
        return lines[-5:]

    def _exit_failure(self, code: int, stderr_tail: list[str]) -> WasmRequestError:
        tail = " | ".join(stderr_tail)
        return self._fail(f"Wasm Worker {self.name!r} exited with code {code} while handling "
                          f"fetch" + (f"; its stderr ended with: {tail}" if tail else ""))

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
        ctx.memory = store.memory
        set_context(ctx)
        try:
            try:
                out, error, fault = wasm_native.reactor_fetch(
                    store, inst.alloc, inst.fetch, http_request_bytes(method, url, headers, body),
                    int(budget_ms / TICK_MS) + 1)
            except Exception as exc:  # not the module's doing: still never reuse the instance
                out, error, fault = None, exc, None
            if fault:
                ctx.fail(fault)
            if error is not None:
                failure = self._failure(error, ctx.fault, store.memory_size(), budget_ms, "")
                store.close()
                raise failure
        finally:
            set_context(None)
            ctx.flush_logs()
        if ctx.fault:
            store.close()
            raise self._fail(f"Wasm Worker {self.name!r}: {ctx.fault}")
        with self._instances_lock:
            if self._program is program and len(self._instances) < self._max_threads:
                self._instances.append(inst)
                inst = None
        if inst is not None:
            store.close()
        return self._response(out or b"")

    def _response(self, out: bytes) -> list[Any]:
        fast = self._parse_fast
        if fast is not None:
            parsed = fast(out)
            if parsed is not None:
                return parsed
        try:
            return parse_response(out)
        except MalformedResponse as exc:
            raise self._fail(f"Wasm Worker {self.name!r} wrote a malformed response: {exc}. A "
                             f"response is header lines ('Name: value', e.g. 'Content-Type: "
                             f"text/plain'), a blank line, then the body (docs/wasm.md)") from None

    def _fail(self, message: str, status: int = 500) -> WasmRequestError:
        self.log_line("error", message)
        return WasmRequestError(message, status)

    def _failure(self, exc: BaseException, fault: str | None, used: int | None,
                 budget_ms: float, doing: str, *, starting: bool = False) -> WasmRequestError:
        """Name what went wrong: CPU limit, memory limit, a trap, or a guest bug we caught.
        ``fault`` is a guest bug a host function found, ``used`` the memory in use."""
        problem, status = self._problem(exc, fault, used, budget_ms)
        if isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT \
                and budget_ms == _INIT_MS:
            problem = (f"ran its start function (or _initialize) for more than {_INIT_MS // 1000} "
                       f"s and was stopped; a module must be ready to serve before that")
        if starting:
            return WasmRequestError(f"it {problem}", status)
        where = f" (while {doing})" if doing else ""
        return self._fail(f"Wasm Worker {self.name!r} {problem}{where}; the next request gets a "
                          f"fresh instance", status)

    def _problem(self, exc: BaseException, fault: str | None, used: int | None,
                 budget_ms: float) -> tuple[str, int]:
        if fault:
            return f"failed: {fault}", 500
        cap = self._memory_bytes
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
            return (f"ran past its request timeout of {self.request_timeout:g} s "
                    f"(request_timeout_ms) and was stopped"), 504
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return "ran out of fuel", 500
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
        """The Worker-side KV binding's method: the call travels to the host over the channel
        exactly as a Python Worker's ``await env.KV.get(...)`` does."""
        if threading.get_ident() == self._loop_thread:  # waiting here would stop the loop
            raise RuntimeError("KV is not available while the module starts (its start "
                               "function or _initialize); call it while handling a request")
        return getattr(self.runtime.env[binding], op)(*args, **kwargs)

    def log_line(self, level: str, text: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self.runtime.log, level, text)
        except RuntimeError:  # the loop is closed: the isolate is shutting down
            pass


def _one_malloc_arena() -> None:
    """Keep glibc from giving each new thread its own malloc arena.

    Why: the isolate runs under an address-space rlimit (limits.memory_mb + 256 MiB), and
    every thread arena reserves 64 MiB of it; the epoch ticker, the pool threads and
    wasmtime's compiler threads would otherwise spend the Worker's memory allowance on
    reservations. Python objects come from pymalloc under the GIL anyway.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _error_wire(exc: WasmRequestError) -> list[Any]:
    return [exc.status, [["content-type", "text/plain;charset=UTF-8"]], str(exc).encode()]


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
