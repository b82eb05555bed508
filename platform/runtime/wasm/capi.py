"""The wasmtime C-API functions the Wasm hot path calls, bound with a GIL policy.

wasmtime-py's raw bindings (``wasmtime._bindings``) load the library with ``ctypes.CDLL``,
which releases the GIL around every call. That is right for calls that run Wasm code (they
may run for seconds), and wrong for the dozen calls of a few hundred nanoseconds that set up
a store: under load each release hands the GIL to another thread and back, a pair of
context switches that costs more than the call. So the same symbols are bound twice here:

* ``quick``: through ``ctypes.PyDLL`` (the GIL stays held) for calls that never run guest
  code and return in microseconds;
* ``slow``: wasmtime-py's own CDLL bindings for instantiation (a start function may run),
  calls into Wasm, and store deletion (unmapping memory can take tens of µs).

Argument and result types are copied from wasmtime-py's bindings, so both agree.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _bindings as B
from wasmtime import _ffi

_pydll = ctypes.PyDLL(B.dll._name, handle=B.dll._handle)


def _quick(name: str, argtypes: list[Any] | None = None) -> Any:
    slow = getattr(B, f"_{name}")
    fn = getattr(_pydll, name)
    fn.argtypes = argtypes if argtypes is not None else slow.argtypes
    fn.restype = slow.restype
    return fn


# -- quick: GIL held ------------------------------------------------------------------------
store_new = _quick("wasmtime_store_new")
store_context = _quick("wasmtime_store_context")
store_limiter = _quick("wasmtime_store_limiter")
set_epoch_deadline = _quick("wasmtime_context_set_epoch_deadline")
wasi_config_new = _quick("wasi_config_new")
wasi_config_set_argv = _quick("wasi_config_set_argv")
# the string arrays go in as plain pointers: a ctypes.cast per array costs a microsecond
wasi_config_set_env = _quick("wasi_config_set_env", [ctypes.POINTER(B.wasi_config_t), ctypes.c_size_t,
                                                     ctypes.c_void_p, ctypes.c_void_p])
context_set_wasi = _quick("wasmtime_context_set_wasi")
instance_export_get = _quick("wasmtime_instance_export_get")
memory_data = _quick("wasmtime_memory_data")
memory_data_size = _quick("wasmtime_memory_data_size")
caller_export_get = _quick("wasmtime_caller_export_get")
caller_context = _quick("wasmtime_caller_context")
trap_new = _quick("wasmtime_trap_new")
engine_increment_epoch = _quick("wasmtime_engine_increment_epoch")

# -- slow: GIL released -----------------------------------------------------------------------
instance_pre_instantiate = B._wasmtime_instance_pre_instantiate
func_call_unchecked = B._wasmtime_func_call_unchecked
store_delete = B._wasmtime_store_delete
linker_define_func_unchecked = B._wasmtime_linker_define_func_unchecked

# -- types and constants ------------------------------------------------------------------------
extern_t = B.wasmtime_extern_t
instance_t = B.wasmtime_instance_t
val_raw_t = B.wasmtime_val_raw_t
trap_p = ctypes.POINTER(B.wasm_trap_t)
char_pp = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
unchecked_callback_t = B.wasmtime_func_unchecked_callback_t
no_finalizer = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
EXTERN_FUNC = _ffi.WASMTIME_EXTERN_FUNC.value
EXTERN_MEMORY = _ffi.WASMTIME_EXTERN_MEMORY.value
