"""The host side of the Wasm ABI: stdio for the CGI contract and the ``edgelet`` imports.

Everything here runs on the thread that runs the Wasm (the isolate's event-loop thread, or
a pool thread for modules that call KV) while Wasm code is on the stack. The functions find
the request they serve through a thread-local :class:`CallContext`, because one linker
(with these functions) serves every module and every request of the process.

Why raw wasmtime C-API callbacks (:mod:`edgelet.runtime.wasm.capi`) rather than ``Linker.define_func``:

* cost: wasmtime-py wraps every argument and result in ``Val`` objects (about 20 µs per
  call); reading the raw slots costs a few, and a Wasm request makes several calls;
* correctness: wasmtime-py keeps a failing host function's exception in a process-global
  slot, which concurrent threads would race on. A raw callback returns its own trap.

Two rules keep a guest from ever hurting the host: every pointer and length a guest passes
is checked against its memory before a byte is touched (a bad one traps the guest with a
message naming the call, and fails the request with it), and no Python exception ever
leaves a callback.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import wasmtime
from wasmtime import FuncType, ValType

from edgelet.runtime.wasm import capi as C
from edgelet.runtime.wasm.engine import TICK_MS, engine

log = logging.getLogger("edgelet.wasm")

# -- return codes of the edgelet.* functions (docs/wasm.md "Host functions") -----------
OK = 0
NOT_FOUND = 1
NO_BINDING = -1
INVALID = -2
FAILED = -3
NO_ALLOC = -4
FAULT = -5

# -- WASI errno values used by the stdio shims -----------------------------------------
_ESUCCESS = 0
_EBADF = 8
_EFAULT = 21
_EFBIG = 22

#: most a module may write to stdout for one response (the HTTP front's body cap)
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
#: what a request that wrote past MAX_RESPONSE_BYTES fails with (both Wasm paths)
RESPONSE_TOO_BIG = (f"the module wrote more than {MAX_RESPONSE_BYTES // 1048576} MiB to "
                    f"stdout; responses are capped at that size")
#: stderr is logged line by line; a longer line is cut
MAX_LOG_LINE = 16 * 1024

HOST_FUNCTIONS = ("kv_get", "kv_put", "kv_delete", "kv_list", "var_get", "last_error")

_U32 = struct.Struct("<I")
_U32x2 = struct.Struct("<II")
_MEMORY = b"memory"
_ALLOC = b"alloc"
_EXTERN_FUNC = C.EXTERN_FUNC
_EXTERN_MEMORY = C.EXTERN_MEMORY

# raw C functions, bound once (each attribute lookup costs on the hot path)
_memory_data = C.memory_data
_memory_size = C.memory_data_size
_caller_export = C.caller_export_get
_caller_context = C.caller_context
_func_call = C.func_call_unchecked
_trap_new = C.trap_new
_byref = ctypes.byref
_string_at = ctypes.string_at
_memmove = ctypes.memmove
_address = ctypes.addressof


class Services:
    """What the host functions need from the Worker (implemented by ``WasmRunner``)."""

    name: str
    loop: asyncio.AbstractEventLoop
    kv_bindings: frozenset[str]
    var_values: dict[str, bytes]

    def kv_call(self, binding: str, op: str, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        raise NotImplementedError

    def log_line(self, level: str, text: str) -> None:
        raise NotImplementedError


class CallContext:
    """One request (or one reactor instantiation) in flight on this thread.

    A plain class with ``__slots__``, not a dataclass: one is built per request, and the
    default factories of a dataclass cost as much as the rest of a hello-world's setup.
    """

    __slots__ = ("services", "cptr", "memory", "stdin", "stdin_pos", "stdout_is_log", "stdout",
                 "stdout_size", "stderr", "stdout_line", "stderr_tail", "fault", "last_error",
                 "budget_s", "started", "host_s", "deadline")

    def __init__(self, services: Services, cptr: Any, *, stdin: bytes = b"",
                 stdout_is_log: bool = False, budget_s: float = 30.0,
                 deadline: float = 0.0) -> None:
        self.services = services
        #: the store's context pointer (``wasmtime_context_t*``)
        self.cptr = cptr
        #: the instance's exported memory (``wasmtime_memory_t``), once instantiated
        self.memory: Any = None
        self.stdin = stdin
        self.stdin_pos = 0
        #: reactor modules answer through ``fetch``'s result: their stdout is a log
        self.stdout_is_log = stdout_is_log
        self.stdout: list[bytes] = []
        self.stdout_size = 0
        self.stderr = bytearray()
        self.stdout_line = bytearray()
        #: the last stderr lines, quoted when the module exits with an error
        self.stderr_tail: list[str] = []
        #: a guest bug found by a host function; the request fails with this message
        self.fault: str | None = None
        self.last_error = ""
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.host_s = 0.0
        #: time.monotonic() by which the whole request must be done (KV waits)
        self.deadline = deadline

    def fail(self, message: str) -> None:
        if self.fault is None:
            self.fault = message

    def flush_logs(self) -> None:
        for buf in (self.stderr, self.stdout_line):
            if buf:
                line = buf.decode("utf-8", "replace")
                self.services.log_line("log", line)
                if buf is self.stderr:
                    self.stderr_tail = (self.stderr_tail + [line])[-5:]
                buf.clear()

    def wasm_ms(self) -> float:
        """Time spent running Wasm (host calls excluded), for the CPU limit."""
        return (time.perf_counter() - self.started - self.host_s) * 1000


_current = threading.local()


def set_context(ctx: CallContext | None) -> None:
    _current.ctx = ctx


def _ctx() -> CallContext | None:
    return getattr(_current, "ctx", None)


# --------------------------------------------------------------------------------------
# guest memory access
# --------------------------------------------------------------------------------------


class _Fault(Exception):
    """Internal: a guest pointer/length is unusable (never escapes a callback)."""


class Guest:
    """The calling instance's memory (and ``alloc``), for one host call."""

    __slots__ = ("caller", "cptr", "mem", "base", "size")

    def __init__(self, caller: Any, memory: Any = None) -> None:
        self.caller = caller
        self.cptr = _caller_context(caller)
        if memory is None:
            ext = C.extern_t()
            if not _caller_export(caller, _MEMORY, 6, _byref(ext)) or ext.kind != _EXTERN_MEMORY:
                raise _Fault("the module does not export its linear memory as \"memory\"")
            memory = ext.of.memory
        self.mem = memory
        self.refresh()

    def refresh(self) -> None:
        """Re-read the memory's address and size (both change when it grows)."""
        self.base = _address(_memory_data(self.cptr, _byref(self.mem)).contents)
        self.size = _memory_size(self.cptr, _byref(self.mem))

    def check(self, what: str, ptr: int, length: int) -> tuple[int, int]:
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        if ptr + length > self.size:
            raise _Fault(f"{what} at 0x{ptr:x} ({length} bytes) lies outside the module's "
                         f"{self.size}-byte memory")
        return ptr, length

    def read(self, what: str, ptr: int, length: int) -> bytes:
        ptr, length = self.check(what, ptr, length)
        return _string_at(self.base + ptr, length) if length else b""

    def text(self, what: str, ptr: int, length: int) -> str:
        try:
            return self.read(what, ptr, length).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not valid UTF-8") from None

    def write(self, what: str, ptr: int, data: bytes) -> None:
        ptr, _ = self.check(what, ptr, len(data))
        _memmove(self.base + ptr, data, len(data))

    def alloc(self, size: int) -> int | None:
        """``alloc(size)`` in the guest; None if it exports none; _Fault if it fails."""
        ext = C.extern_t()
        if not _caller_export(self.caller, _ALLOC, 5, _byref(ext)) or ext.kind != _EXTERN_FUNC:
            return None
        func = ext.of.func
        slots = (C.val_raw_t * 1)()
        slots[0].i32 = size
        trap = C.trap_p()
        error = _func_call(self.cptr, _byref(func), slots, 1, _byref(trap))
        if error or trap:
            exc = wasmtime.WasmtimeError._from_ptr(error) if error else wasmtime.Trap._from_ptr(trap)
            raise _Fault(f"alloc({size}) failed: {_cause(exc)}")
        ptr = slots[0].i32 & 0xFFFFFFFF
        self.refresh()  # alloc may have grown the memory
        if ptr == 0 and size:
            raise _Fault(f"alloc({size}) returned 0 (out of memory?)")
        return ptr


def _cause(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, wasmtime.Trap) else str(exc)
    if "Caused by:" in text:
        text = text.split("Caused by:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else type(exc).__name__


def _give(guest: Guest, ctx: CallContext, call: str, data: bytes, ret_ptr: int) -> int:
    """Copy ``data`` into a buffer from the guest's ``alloc``; store (ptr, len) at ret_ptr."""
    guest.check(f"{call}: the result slot", ret_ptr, 8)
    ptr = guest.alloc(len(data))
    if ptr is None:
        ctx.last_error = (f"edgelet.{call} needs the module to export alloc(size: i32) -> i32 "
                          f"to hand back {len(data)} bytes")
        ctx.services.log_line("warn", ctx.last_error)
        return NO_ALLOC
    guest.write(f"alloc({len(data)}) returned a buffer that", ptr, data)  # bounds-checked
    guest.write(f"{call}: the result slot", ret_ptr, _U32x2.pack(ptr, len(data)))
    return OK


def _trap(message: str) -> int:
    raw = message.encode("utf-8", "replace")
    return ctypes.cast(_trap_new(raw, len(raw)), ctypes.c_void_p).value or 0


# --------------------------------------------------------------------------------------
# the edgelet.* functions
# --------------------------------------------------------------------------------------


def _await(ctx: CallContext, coro: Coroutine[Any, Any, Any], what: str) -> Any:
    """Run ``coro`` on the isolate's loop and wait, without charging the wait as CPU time."""
    t0 = time.perf_counter()
    remaining = max(0.001, ctx.deadline - time.monotonic())
    fut = asyncio.run_coroutine_threadsafe(coro, ctx.services.loop)
    try:
        return fut.result(remaining)
    except TimeoutError:
        fut.cancel()
        raise TimeoutError(f"{what} did not finish before the request timeout") from None
    finally:
        ctx.host_s += time.perf_counter() - t0
        left_ms = ctx.budget_s * 1000 - ctx.wasm_ms()
        C.set_epoch_deadline(ctx.cptr, max(1, int(left_ms / TICK_MS) + 1))


def _binding(ctx: CallContext, call: str, name: str) -> str | None:
    """``name`` if the Worker declares that KV binding, else None with last_error set."""
    if name not in ctx.services.kv_bindings:
        known = ", ".join(sorted(ctx.services.kv_bindings)) or "none"
        ctx.last_error = (f"{call}: Worker {ctx.services.name!r} has no KV binding named "
                          f"{name!r} (its KV bindings: {known}); add it to kv_namespaces")
        return None
    return name


def _kv(ctx: CallContext, call: str, binding: str, op: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return _await(ctx, ctx.services.kv_call(binding, op, *args, **kwargs),
                      f"{call} on {binding!r}")
    except (ValueError, TypeError, KeyError, LookupError) as exc:
        raise ValueError(str(exc)) from None


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"KV returned a {type(value).__name__}, expected bytes")


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def kv_get(g: Guest, ctx: CallContext, b_ptr: int, b_len: int, k_ptr: int, k_len: int,
           ret_ptr: int) -> int:
    name = g.text("kv_get: the binding name", b_ptr, b_len)
    key = g.text("kv_get: the key", k_ptr, k_len)
    g.check("kv_get: the result slot", ret_ptr, 8)
    binding = _binding(ctx, "kv_get", name)
    if binding is None:
        return NO_BINDING
    value = _kv(ctx, "kv_get", binding, "get", key, type="bytes")
    if value is None:
        return NOT_FOUND
    g.refresh()
    return _give(g, ctx, "kv_get", _as_bytes(value), ret_ptr)


def kv_put(g: Guest, ctx: CallContext, b_ptr: int, b_len: int, k_ptr: int, k_len: int,
           v_ptr: int, v_len: int, ttl: int) -> int:
    name = g.text("kv_put: the binding name", b_ptr, b_len)
    key = g.text("kv_put: the key", k_ptr, k_len)
    value = g.read("kv_put: the value", v_ptr, v_len)
    binding = _binding(ctx, "kv_put", name)
    if binding is None:
        return NO_BINDING
    if ttl < 0:
        raise ValueError(f"expiration ttl {ttl} is negative; pass 0 for no expiry")
    options = {"expirationTtl": ttl} if ttl else {}
    _kv(ctx, "kv_put", binding, "put", key, value, **options)
    return OK


def kv_delete(g: Guest, ctx: CallContext, b_ptr: int, b_len: int, k_ptr: int, k_len: int) -> int:
    name = g.text("kv_delete: the binding name", b_ptr, b_len)
    key = g.text("kv_delete: the key", k_ptr, k_len)
    binding = _binding(ctx, "kv_delete", name)
    if binding is None:
        return NO_BINDING
    _kv(ctx, "kv_delete", binding, "delete", key)
    return OK


def kv_list(g: Guest, ctx: CallContext, b_ptr: int, b_len: int, p_ptr: int, p_len: int,
            c_ptr: int, c_len: int, limit: int, ret_ptr: int) -> int:
    name = g.text("kv_list: the binding name", b_ptr, b_len)
    prefix = g.text("kv_list: the prefix", p_ptr, p_len)
    cursor = g.text("kv_list: the cursor", c_ptr, c_len)
    g.check("kv_list: the result slot", ret_ptr, 8)
    binding = _binding(ctx, "kv_list", name)
    if binding is None:
        return NO_BINDING
    options: dict[str, Any] = {}
    if prefix:
        options["prefix"] = prefix
    if cursor:
        options["cursor"] = cursor
    if limit > 0:
        options["limit"] = limit
    result = _kv(ctx, "kv_list", binding, "list", **options)
    keys = [_field(k, "name") for k in (_field(result, "keys") or [])]
    complete = bool(_field(result, "list_complete", True))
    next_cursor = "" if complete else str(_field(result, "cursor") or "")
    parts = [_U32.pack(len(keys))]
    for key in keys:
        raw = str(key).encode("utf-8")
        parts.append(_U32.pack(len(raw)) + raw)
    raw_cursor = next_cursor.encode("utf-8")
    parts.append(_U32.pack(len(raw_cursor)) + raw_cursor)
    g.refresh()
    return _give(g, ctx, "kv_list", b"".join(parts), ret_ptr)


def var_get(g: Guest, ctx: CallContext, n_ptr: int, n_len: int, ret_ptr: int) -> int:
    name = g.text("var_get: the name", n_ptr, n_len)
    g.check("var_get: the result slot", ret_ptr, 8)
    value = ctx.services.var_values.get(name)
    if value is None:
        return NOT_FOUND
    return _give(g, ctx, "var_get", value, ret_ptr)


def last_error(g: Guest, ctx: CallContext, ret_ptr: int) -> int:
    g.check("last_error: the result slot", ret_ptr, 8)
    if not ctx.last_error:
        return NOT_FOUND
    return _give(g, ctx, "last_error", ctx.last_error.encode("utf-8"), ret_ptr)


def _host_function(call: str, fn: Callable[..., int], nparams: int) -> Callable[..., int]:
    """A raw callback for ``fn``: reads the i32 slots, never raises, traps on a bad pointer."""

    def callback(env: Any, caller: Any, slots: Any, count: int) -> int:
        ctx = _ctx()
        if ctx is None:  # called from a start function, outside any request
            slots[0].i32 = FAILED
            return 0
        try:
            params = [slots[i].i32 for i in range(nparams)]
            guest = Guest(caller, ctx.memory)
            if ctx.cptr is None:  # the store was made in C (edgelet.runtime.wasm.native)
                ctx.cptr = guest.cptr
            slots[0].i32 = fn(guest, ctx, *params)
            return 0
        except _Fault as exc:
            ctx.fail(f"host call edgelet.{call} was given a bad pointer: {exc}; that is a bug "
                     f"in the module (see docs/wasm.md, Host functions)")
            ctx.last_error = str(exc)
            return _trap(f"edgelet.{call}: {exc}")
        except ValueError as exc:
            ctx.last_error = f"edgelet.{call}: {exc}"
            ctx.services.log_line("warn", ctx.last_error)
            slots[0].i32 = INVALID
            return 0
        except BaseException as exc:  # never let an exception into wasmtime
            ctx.last_error = f"edgelet.{call} failed: {type(exc).__name__}: {exc}"
            ctx.services.log_line("error", ctx.last_error)
            slots[0].i32 = FAILED
            return 0

    return callback


# --------------------------------------------------------------------------------------
# stdio: WASI fd_read/fd_write for fds 0-2, in Python
# --------------------------------------------------------------------------------------
# Why shadow these two WASI functions: wasmtime's own stdout capture (stdout_custom) goes
# through an async stream and costs ~100 µs per response; reading the iovecs here costs a
# few. Everything else in wasi_snapshot_preview1 is wasmtime's implementation.


def _iovecs(g: Guest, iovs: int, count: int) -> list[tuple[int, int]]:
    count &= 0xFFFFFFFF
    raw = g.read("iovec array", iovs, 8 * count)
    vecs = [_U32x2.unpack_from(raw, 8 * i) for i in range(count)]
    for p, n in vecs:
        g.check("iovec buffer", p, n)
    return vecs


def _fd_write(env: Any, caller: Any, slots: Any, count: int) -> int:
    ctx = _ctx()
    fd = slots[0].i32
    if ctx is None or fd not in (1, 2):
        slots[0].i32 = _EBADF
        return 0
    try:
        g = Guest(caller, ctx.memory)
        vecs = _iovecs(g, slots[1].i32, slots[2].i32)
        nwritten = slots[3].i32
        g.check("nwritten", nwritten, 4)
        base = g.base
        data = b"".join([_string_at(base + p, n) for p, n in vecs if n])
        if fd == 1 and not ctx.stdout_is_log:
            if ctx.stdout_size + len(data) > MAX_RESPONSE_BYTES:
                ctx.fail(RESPONSE_TOO_BIG)
                slots[0].i32 = _EFBIG
                return 0
            ctx.stdout.append(data)
            ctx.stdout_size += len(data)
        else:
            _log_lines(ctx, ctx.stderr if fd == 2 else ctx.stdout_line, data, fd == 2)
        _memmove(base + (nwritten & 0xFFFFFFFF), _U32.pack(len(data)), 4)
        slots[0].i32 = _ESUCCESS
    except _Fault:
        slots[0].i32 = _EFAULT
    except BaseException:  # never let an exception into wasmtime
        log.exception("fd_write shim failed")
        slots[0].i32 = _EFAULT
    return 0


def _fd_read(env: Any, caller: Any, slots: Any, count: int) -> int:
    ctx = _ctx()
    if ctx is None or slots[0].i32 != 0:
        slots[0].i32 = _EBADF
        return 0
    try:
        g = Guest(caller, ctx.memory)
        vecs = _iovecs(g, slots[1].i32, slots[2].i32)
        nread = slots[3].i32
        g.check("nread", nread, 4)
        total = 0
        for p, n in vecs:
            chunk = ctx.stdin[ctx.stdin_pos:ctx.stdin_pos + n]
            if not chunk:
                break
            _memmove(g.base + p, chunk, len(chunk))
            ctx.stdin_pos += len(chunk)
            total += len(chunk)
        _memmove(g.base + (nread & 0xFFFFFFFF), _U32.pack(total), 4)
        slots[0].i32 = _ESUCCESS
    except _Fault:
        slots[0].i32 = _EFAULT
    except BaseException:
        log.exception("fd_read shim failed")
        slots[0].i32 = _EFAULT
    return 0


def _log_lines(ctx: CallContext, buf: bytearray, data: bytes, is_stderr: bool) -> None:
    """Complete lines go to the Worker's log (stderr is where WASI programs log: stdout is
    the response), and the last stderr lines are kept to explain a failed exit."""
    buf.extend(data)
    while True:
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > MAX_LOG_LINE:
                ctx.services.log_line("log", buf[:MAX_LOG_LINE].decode("utf-8", "replace"))
                del buf[:MAX_LOG_LINE]
            return
        line = buf[:nl].rstrip(b"\r").decode("utf-8", "replace")
        ctx.services.log_line("log", line)
        if is_stderr:
            ctx.stderr_tail = (ctx.stderr_tail + [line])[-5:]
        del buf[:nl + 1]


# --------------------------------------------------------------------------------------
# the linker
# --------------------------------------------------------------------------------------

_linker: wasmtime.Linker | None = None
_linker_lock = threading.Lock()
#: the ctypes callbacks and types must outlive the linker: keep them here
_keep: list[Any] = []


def define(lk: wasmtime.Linker, module: str, name: str, nparams: int,
           fn: Callable[..., int] | int) -> None:
    """Define ``module.name`` (i32 params, one i32 result) as ``fn``: a Python function, or
    the address of a C callback with the same (unchecked) signature."""
    i32 = ValType.i32()
    ty = FuncType([i32] * nparams, [i32])
    cb = C.unchecked_callback_t(fn)
    _keep.extend((ty, cb))
    m, n = module.encode(), name.encode()
    error = C.linker_define_func_unchecked(lk.ptr(), m, len(m), n, len(n), ty.ptr(), cb, None,
                                           C.no_finalizer)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def linker() -> wasmtime.Linker:
    """WASI preview 1 (with our stdio shims) plus the ``edgelet`` module, built once."""
    global _linker
    with _linker_lock:
        if _linker is None:
            lk = wasmtime.Linker(engine())
            lk.define_wasi()
            lk.allow_shadowing = True
            define(lk, "wasi_snapshot_preview1", "fd_write", 4, _fd_write)
            define(lk, "wasi_snapshot_preview1", "fd_read", 4, _fd_read)
            lk.allow_shadowing = False
            define_host_functions(lk)
            _linker = lk
        return _linker


def define_host_functions(lk: wasmtime.Linker) -> None:
    """The ``edgelet`` module: KV, vars and last_error, as raw Python callbacks that find
    their request through :func:`set_context`."""
    for fn, nparams in ((kv_get, 5), (kv_put, 7), (kv_delete, 4), (kv_list, 8),
                        (var_get, 3), (last_error, 1)):
        define(lk, "edgelet", fn.__name__, nparams, _host_function(fn.__name__, fn, nparams))
