"""One wasmtime store driven through the raw C API (see :mod:`edgelet.runtime.wasm.capi`).

Why not ``wasmtime.Store``/``Instance``/``Func``: their Python wrappers cost about 100 µs per
request (type objects and ``Val`` boxes on every call), which is the whole budget of a
hello-world. A store here is one request's (command modules) or one live instance's
(reactors), used by one thread at a time and deleted explicitly with :meth:`Store.close`.
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime

from edgelet.runtime.wasm import capi as C


class Store:
    """A Store with its limits, epoch deadline and WASI context (argv, environment)."""

    __slots__ = ("ptr", "cptr", "memory", "closed")

    def __init__(self, engine_ptr: Any, memory_bytes: int, ticks: int, argv: Any,
                 env: dict[bytes, bytes]) -> None:
        self.ptr = _store_new(engine_ptr, None, _NO_FINALIZER)
        self.cptr = _store_context(self.ptr)
        self.memory: Any = None
        self.closed = False
        _store_limiter(self.ptr, memory_bytes, 1_000_000, -1, -1, -1)
        _set_deadline(self.cptr, ticks)
        wasi = _wasi_new()
        _wasi_argv(wasi, 1, argv)
        n = len(env)
        names = (ctypes.c_char_p * n)(*env)
        values = (ctypes.c_char_p * n)(*env.values())
        _wasi_env(wasi, n, names, values)
        error = _set_wasi(self.cptr, wasi)  # takes ownership of wasi
        if error:
            self.close()
            raise wasmtime.WasmtimeError._from_ptr(error)

    def instantiate(self, pre: wasmtime.InstancePre) -> Any:
        instance = C.instance_t()
        trap = _TRAPP()
        error = _pre_instantiate(pre.ptr(), self.cptr, _byref(instance), _byref(trap))
        _raise(error, trap)
        mem = self.export(instance, b"memory")
        if mem is not None and mem.kind == _EXTERN_MEMORY:
            self.memory = mem.of.memory
        return instance

    def export(self, instance: Any, name: bytes) -> Any:
        ext = C.extern_t()
        if not _export_get(self.cptr, _byref(instance), name, len(name), _byref(ext)):
            return None
        return ext

    def call(self, func: Any, slots: Any, count: int) -> None:
        trap = _TRAPP()
        error = _func_call(self.cptr, _byref(func), slots, count, _byref(trap))
        _raise(error, trap)

    def memory_size(self) -> int | None:
        if self.memory is None or self.closed:
            return None
        return _memory_size(self.cptr, _byref(self.memory))

    def memory_base(self) -> int:
        return ctypes.addressof(_memory_data(self.cptr, _byref(self.memory)).contents)

    def set_deadline(self, ticks: int) -> None:
        _set_deadline(self.cptr, ticks)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _store_delete(self.ptr)


def _raise(error: Any, trap: Any) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    if trap:
        raise wasmtime.Trap._from_ptr(trap)


_store_new = C.store_new
_store_context = C.store_context
_store_limiter = C.store_limiter
_store_delete = C.store_delete
_set_deadline = C.set_epoch_deadline
_wasi_new = C.wasi_config_new
_wasi_argv = C.wasi_config_set_argv
_wasi_env = C.wasi_config_set_env
_set_wasi = C.context_set_wasi
_pre_instantiate = C.instance_pre_instantiate
_export_get = C.instance_export_get
_func_call = C.func_call_unchecked
_memory_size = C.memory_data_size
_memory_data = C.memory_data
_byref = ctypes.byref
_TRAPP = C.trap_p
_NO_FINALIZER = C.no_finalizer
EXTERN_FUNC = C.EXTERN_FUNC
_EXTERN_MEMORY = C.EXTERN_MEMORY
Slots1 = C.val_raw_t * 1
Slots2 = C.val_raw_t * 2
