"""The C path of a Wasm request: :mod:`edgelet.runtime.wasm._cgi`, and when it may be used.

A command module gets a fresh Store, WASI context and instance for every request. Done
from Python through ctypes that cost ~30 µs a request, twice a whole Python hello-world
handler; the C extension does the same work in one call (see ``platform/runtime/wasm/_cgi.c``).
WASI's stdio, environment and argv are C callbacks; the ``edgelet.*`` host functions (KV,
vars) stay Python callbacks, which take the GIL back while the module runs without it.

A reactor's request (alloc, copy in, fetch, copy out) is one C call too, for every reactor:
its instance lives on in a Python-owned store, and host functions it calls reach Python.

The extension is optional: when it was not built (no C compiler at install time), when
``EDGELET_WASM_NATIVE=0``, or when its structs do not match wasmtime-py's (a wasmtime
release that changed its C API), :func:`available` is False and everything runs on the
Python path, with the same behaviour and the same messages.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _bindings as B

from edgelet.runtime.wasm import capi as C
from edgelet.runtime.wasm.abi import MAX_RESPONSE_BYTES, define, define_host_functions
from edgelet.runtime.wasm.engine import engine
from edgelet.runtime.wasm.store import Slots2, Store

log = logging.getLogger("edgelet.wasm")

#: stderr kept per request for the log; past it the rest is counted, not kept
MAX_STDERR_BYTES = 1024 * 1024

#: the WASI functions the extension serves itself (stdio, environment, argv): their params
_WASI_PARAMS = {"fd_write": 4, "fd_read": 4, "environ_sizes_get": 2, "environ_get": 2,
                "args_sizes_get": 2, "args_get": 2}

_linker: wasmtime.Linker | None = None
_linker_lock = threading.Lock()


@dataclass
class Outcome:
    """What one run of a command module left behind."""

    stdout: bytes
    stderr: bytes
    #: stderr bytes past MAX_STDERR_BYTES, not kept
    stderr_dropped: int
    exit_code: int
    #: a failure (a trap, a limit, an error of wasmtime's), or None
    error: BaseException | None
    #: the size of the instance's memory at the end (0 if it never existed)
    memory_bytes: int
    #: stdout went past MAX_RESPONSE_BYTES
    too_big: bool


@functools.lru_cache(maxsize=1)
def _extension() -> Any:
    """The bound extension module, or None (with the reason at debug level)."""
    if os.environ.get("EDGELET_WASM_NATIVE", "1") == "0":
        return None
    try:
        from edgelet.runtime.wasm import _cgi as ext  # type: ignore[attr-defined]
    except ImportError as exc:
        log.debug("Wasm requests use the Python path: the C extension is not built (%s)", exc)
        return None
    expected = {name: ctypes.sizeof(getattr(B, name)) for name in ext.layout()}
    if ext.layout() != expected:
        log.debug("Wasm requests use the Python path: the C extension's wasmtime structs "
                  "%s differ from wasmtime-py's %s", ext.layout(), expected)
        return None
    try:
        ext.bind(B.dll._name, C.EXTERN_FUNC, C.EXTERN_MEMORY)
    except ImportError as exc:  # a libwasmtime without a function the extension needs
        log.debug("Wasm requests use the Python path: %s", exc)
        return None
    return ext


def available() -> bool:
    return _extension() is not None


def response_parser() -> Callable[[bytes], list[Any] | None] | None:
    """The extension's parse of a well-formed CGI response (None for anything it leaves to
    :func:`edgelet.runtime.wasm.cgi.parse_response`, which explains what is wrong), if built."""
    ext = _extension()
    return ext.parse_response if ext is not None else None


def linker() -> wasmtime.Linker:
    """WASI preview 1 with the extension's C stdio, environment and argv, and the Python
    ``edgelet`` host functions, built once."""
    global _linker
    ext = _extension()
    assert ext is not None, "edgelet.runtime.wasm.native.linker() needs the C extension"
    with _linker_lock:
        if _linker is None:
            lk = wasmtime.Linker(engine())
            lk.define_wasi()
            lk.allow_shadowing = True
            for name, address in ext.callbacks().items():
                define(lk, "wasi_snapshot_preview1", name, _WASI_PARAMS[name], address)
            lk.allow_shadowing = False
            define_host_functions(lk)
            _linker = lk
        return _linker


def address(pointer: Any) -> int:
    """The address a ctypes pointer holds (``run`` takes the pre and engine as addresses)."""
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0


def run(pre_addr: int, engine_addr: int, memory_bytes: int, ticks: int, argv0: bytes,
        env: dict[bytes, bytes], stdin: bytes, *, call_start: bool = True) -> Outcome:
    """One request: a fresh store and instance, ``_start`` (unless ``call_start`` is
    False: then only instantiate, as the check at start-up does), the store deleted.
    ``pre_addr`` is an InstancePre of :func:`linker`, as :func:`address` gives it."""
    ext = _extension()
    out, err, dropped, code, error_addr, trap_addr, mem, too_big = ext.run(
        pre_addr, engine_addr, memory_bytes, ticks, argv0, env, stdin,
        MAX_RESPONSE_BYTES, MAX_STDERR_BYTES, call_start)
    return Outcome(out, err, dropped, code, _error(error_addr, trap_addr), mem, too_big)


def _error(error_addr: int, trap_addr: int) -> BaseException | None:
    """The exception for an error / trap the extension handed over (it is now ours)."""
    error: BaseException | None = None
    if trap_addr:
        error = wasmtime.Trap._from_ptr(ctypes.cast(trap_addr, ctypes.POINTER(B.wasm_trap_t)))
    if error_addr:
        failure = wasmtime.WasmtimeError._from_ptr(
            ctypes.cast(error_addr, ctypes.POINTER(B.wasmtime_error_t)))
        error = error or failure
    return error


def reactor_fetch(store: Store, alloc: Any, fetch: Any, request: bytes,
                  ticks: int) -> tuple[bytes | None, BaseException | None, str | None]:
    """One request to a live reactor instance: ``alloc(len)``, the request copied in,
    ``fetch(ptr, len)``, the response copied out. Returns (response, failure, fault):
    a trap or limit as an exception, a pointer the module got wrong as a message."""
    ext = _extension()
    if ext is not None:
        out, error_addr, trap_addr, fault = ext.fetch(
            address(store.cptr), ctypes.addressof(alloc), ctypes.addressof(fetch),
            ctypes.addressof(store.memory), request, ticks)
        return out, _error(error_addr, trap_addr), fault
    store.set_deadline(ticks)  # the same steps through ctypes, without the extension
    try:
        slots = Slots2()
        slots[0].i32 = len(request)
        store.call(alloc, slots, 1)
        ptr = slots[0].i32 & 0xFFFFFFFF
        size = store.memory_size() or 0
        if ptr == 0 or ptr + len(request) > size:
            return None, None, (f"alloc({len(request)}) returned 0x{ptr:x}, which is not a "
                                f"buffer inside the module's {size}-byte memory")
        ctypes.memmove(store.memory_base() + ptr, request, len(request))
        slots[0].i32 = ptr
        slots[1].i32 = len(request)
        store.call(fetch, slots, 2)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        return None, exc, None
    packed = slots[0].i64 & 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    size = store.memory_size() or 0
    if out_ptr + out_len > size:
        return None, None, (f"fetch returned a response at 0x{out_ptr:x} ({out_len} bytes) "
                            f"outside the module's {size}-byte memory; return (ptr << 32) | len")
    return ctypes.string_at(store.memory_base() + out_ptr, out_len), None, None
