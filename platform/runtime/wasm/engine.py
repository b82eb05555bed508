"""The process-wide wasmtime engine, its CPU-time ticker and the on-disk compilation cache.

Why one engine for every Wasm Worker: compiled code, the epoch counter and the linker with
the host functions are all per engine, and an engine is thread-safe; a Store per request (or
per reactor instance) is what keeps Workers apart.

CPU limits use epoch interruption rather than fuel: epochs cost a load and compare at loop
heads and function entries (fuel costs an add on every basic block), and they measure time,
which is what ``limits.cpu_ms`` means. A daemon thread advances the epoch once per
millisecond, and only while some Wasm request runs, so an idle platform does not wake up.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

log = logging.getLogger("edgelet.wasm")

#: largest .wasm file a Worker may use; bigger ones are refused before being read
MAX_MODULE_BYTES = 64 * 1024 * 1024
#: one epoch tick, in milliseconds: the unit of Wasm deadlines
TICK_MS = 1
#: how often the ticker thread wakes while requests run: the granularity of ``limits.cpu_ms``
_WAKE_MS = 5
#: how long the ticker keeps running after the last request before it sleeps (seconds)
_LINGER_S = 0.1
#: bumped when the engine configuration changes, so stale cache entries are never loaded
_CONFIG_FINGERPRINT = b"edgelet-wasm-engine-v1;epoch_interruption"

#: address space a compact linear memory reserves beyond its size, to grow without moving
_COMPACT_GROWTH = 1 << 20

_engine: wasmtime.Engine | None = None
_engine_lock = threading.RLock()
#: (slots, bytes per slot) of an isolate's own small pool, set by use_isolate_pool
_isolate_pool: tuple[int, int] | None = None


#: bytes of each pooled memory kept resident (zeroed, not returned) between instances
_KEEP_RESIDENT = 64 * 1024
#: returned memory is handed to the kernel this many slots at a time
_DECOMMIT_BATCH = 16

#: instance slots of the pooling allocator (live instances across all Wasm Workers: at
#: most a pool thread's request plus an idle reactor instance per thread and Worker)
POOL_SLOTS = 256


def engine() -> wasmtime.Engine:
    """The shared engine, created on first use (importing this module stays cheap)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            if _isolate_pool is not None:
                _engine = _new_isolate_engine(*_isolate_pool)
            else:
                _engine = _new_engine(pooling=_pooling_possible(), compact=_address_space_limited())
        return _engine


def use_isolate_pool(slots: int, slot_bytes: int) -> None:
    """Give the engine (not created yet) a pool of ``slots`` instances whose memories are
    at most ``slot_bytes``: what a Wasm Worker's isolate uses (see _new_isolate_engine).
    ``EDGELET_WASM_POOLING=0`` (or strict overcommit) keeps the on-demand allocator."""
    global _isolate_pool
    with _engine_lock:
        if _engine is not None:
            raise RuntimeError("use_isolate_pool() must come before the engine is created")
        if _pooling_allowed():
            _isolate_pool = (slots, slot_bytes)


def _new_isolate_engine(slots: int, slot_bytes: int) -> wasmtime.Engine:
    """An engine with a pool sized for one Wasm Worker's isolate.

    Why: without a pool every instance maps, faults in and unmaps its memory, and for a
    command module (a fresh instance per request) that kernel work was over half of the
    isolate's CPU time per request. A pool reserves ``slots`` memories of ``slot_bytes``
    (the Worker's ``limits.memory_mb``) once and recycles them. The host raises the
    isolate's address-space cap to cover the reservation (edgelet.host); only what is
    used is committed, and the Store limiter still caps each instance at ``slot_bytes``.
    A memory never moves (its whole slot is reserved), so the compiled code differs from
    compact memories': the compile cache keys on it (_cache_key).

    Why keep the first _KEEP_RESIDENT bytes of a slot resident: a recycled slot is
    otherwise given back to the kernel (madvise) and faulted in again by the next
    instance, ~5 µs a request; zeroing a small memory's 64 KiB page costs a third of that.
    Larger memories are still returned past that point, in batches of _DECOMMIT_BATCH.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.memory_reservation = slot_bytes
    config.memory_guard_size = 0
    config.memory_reservation_for_growth = 0
    _use_pool(config, slots, slot_bytes, keep_resident=_KEEP_RESIDENT)
    return wasmtime.Engine(config)


def _use_pool(config: wasmtime.Config, slots: int, memory_bytes: int, *,
              keep_resident: int = 0) -> None:
    """Give ``config`` wasmtime's pooling allocator: ``slots`` instances, memories and
    tables, memories of at most ``memory_bytes``, no async stacks."""
    from wasmtime import _bindings as B
    pool = B.wasmtime_pooling_allocation_config_new()
    B.wasmtime_pooling_allocation_config_total_core_instances_set(pool, slots)
    B.wasmtime_pooling_allocation_config_total_memories_set(pool, slots)
    B.wasmtime_pooling_allocation_config_total_tables_set(pool, slots)
    B.wasmtime_pooling_allocation_config_total_stacks_set(pool, 0)
    B.wasmtime_pooling_allocation_config_max_memory_size_set(pool, memory_bytes)
    B.wasmtime_pooling_allocation_config_table_elements_set(pool, 100_000)
    B.wasmtime_pooling_allocation_config_max_tables_per_module_set(pool, 4)
    if keep_resident:
        B.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pool, keep_resident)
        B.wasmtime_pooling_allocation_config_decommit_batch_size_set(pool, _DECOMMIT_BATCH)
    B.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    B.wasmtime_pooling_allocation_config_delete(pool)


def _address_space_limited() -> bool:
    """Whether this process runs under an address-space rlimit (an isolate's memory cap)."""
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    except (ImportError, ValueError, OSError):
        return False


def _pooling_possible() -> bool:
    """Whether the pool's address-space reservation can succeed.

    wasmtime's C API aborts the process (a Rust panic) when the reservation fails instead of
    returning an error, so the conditions are checked first: no address-space rlimit and no
    strict overcommit accounting. ``EDGELET_WASM_POOLING=0`` turns the pool off.
    """
    return not _address_space_limited() and _pooling_allowed()


def _pooling_allowed() -> bool:
    """Not turned off (``EDGELET_WASM_POOLING=0``), and large address-space reservations
    can succeed: not under strict overcommit accounting (vm.overcommit_memory = 2), where
    wasmtime's reservation would fail and its C API abort the process."""
    if os.environ.get("EDGELET_WASM_POOLING", "1") == "0":
        return False
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() != "2"
    except OSError:
        return os.name == "posix"


def _new_engine(pooling: bool, compact: bool = False) -> wasmtime.Engine:
    """An engine with epoch interruption and, if the OS allows, the pooling allocator.

    Why ``compact``: an isolate runs under an address-space rlimit (its memory cap plus
    256 MiB), and wasmtime's default reserves 4 GiB plus a 2 GiB guard per linear memory,
    which that limit refuses outright. Compact memories reserve only what they use (and move
    when they grow), at the price of an explicit bounds check on each load and store.

    Why pooling: the default allocator maps and unmaps a fresh 4 GiB reservation for every
    instance, and with a fresh instance per request that kernel work was a third of a
    hello-world request. The pool reserves address space for ``POOL_SLOTS`` instances once
    (about 1 TiB of virtual memory, none of it committed until used) and recycles slots.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    if compact:
        config.memory_reservation = 0
        config.memory_guard_size = 0
        config.memory_reservation_for_growth = _COMPACT_GROWTH
    if pooling:
        _use_pool(config, POOL_SLOTS, 4 << 30)
    try:
        return wasmtime.Engine(config)
    except wasmtime.WasmtimeError as exc:
        if not pooling:
            raise
        log.debug("pooling allocator unavailable (%s); using on-demand allocation", exc)
        return _new_engine(pooling=False, compact=compact)


class EpochTicker:
    """Advances the engine's epoch by one per elapsed millisecond while requests run.

    ``enter()``/``leave()`` bracket every Wasm call. The thread wakes every ``_WAKE_MS``
    and adds the whole milliseconds really elapsed, so a late wake-up never stretches a
    deadline by more than one wake interval. It goes to sleep only after ``_LINGER_S``
    without a request: back-to-back short requests (one after another on an isolate's
    event loop) must not wake it once each. The increment is a GIL-holding C call (a
    release per tick would hand the GIL around).
    """

    def __init__(self, eng: wasmtime.Engine) -> None:
        from edgelet.runtime.wasm import capi as wasm_capi
        self._increment = wasm_capi.engine_increment_epoch
        self._engine_ptr = eng.ptr()
        self._active = 0
        self._waiting = False
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="edgelet-wasm-epoch",
                                                daemon=True)
                self._thread.start()
            elif self._waiting:
                self._waiting = False
                self._cond.notify()

    def leave(self) -> None:
        with self._cond:
            self._active -= 1

    def _run(self) -> None:
        step, wake = TICK_MS / 1000.0, _WAKE_MS / 1000.0
        sleep, clock, increment, ptr = time.sleep, time.perf_counter, self._increment, self._engine_ptr
        while True:
            last = idle_since = clock()
            while True:
                sleep(wake)
                now = clock()
                ticks = int((now - last) / step)
                for _ in range(ticks):
                    increment(ptr)
                last += ticks * step
                if self._active:
                    idle_since = now
                elif now - idle_since > _LINGER_S:
                    break
            with self._cond:
                while self._active == 0:
                    self._waiting = True
                    self._cond.wait()
                self._waiting = False


_ticker: EpochTicker | None = None


def ticker() -> EpochTicker:
    """The shared ticker of :func:`engine` (its thread starts with the first request)."""
    global _ticker
    with _engine_lock:
        if _ticker is None:
            _ticker = EpochTicker(engine())
        return _ticker


# --------------------------------------------------------------------------------------
# loading a module: checks, then the compilation cache
# --------------------------------------------------------------------------------------


class ModuleLoadError(Exception):
    """The file is not a usable Wasm module; the message says why and what to do."""


@dataclass
class LoadedModule:
    module: wasmtime.Module
    sha256: str
    size: int
    #: True when the compiled code came from the on-disk cache
    cached: bool
    #: time to compile or deserialize, in milliseconds
    load_ms: float


def cache_dir(state_dir: Path | None) -> Path:
    """``<state_dir>/wasm-cache``, or ``$XDG_CACHE_HOME/edgelet/wasm-cache`` with --in-memory."""
    if state_dir is not None:
        return Path(state_dir) / "wasm-cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgelet" / "wasm-cache"


def read_module_bytes(path: Path) -> bytes:
    """The file's bytes after the cheap checks: exists, within the size cap, Wasm magic."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModuleLoadError(f"{path} does not exist; build it or correct main") from None
    if size > MAX_MODULE_BYTES:
        raise ModuleLoadError(
            f"{path} is {size / 1048576:.1f} MiB, over the {MAX_MODULE_BYTES // 1048576} MiB limit "
            f"for Wasm modules; build it in release mode and strip it (e.g. wasm-opt -Oz, "
            f"wasm-strip)")
    data = path.read_bytes()
    if data[:4] != b"\0asm":
        head = data[:16]
        shown = head.decode("utf-8", "replace") if head.isascii() else head.hex(" ")
        raise ModuleLoadError(
            f"{path} is not a WebAssembly module (it starts with {shown!r}, not the bytes "
            f"'\\0asm'); point main at a compiled .wasm file (a .wat text file needs "
            f"wasmtime.wat2wasm first, see docs/wasm.md)")
    if data[4:8] != b"\x01\0\0\0":
        if data[6:8] == b"\x01\0":
            raise ModuleLoadError(
                f"{path} is a WebAssembly component; edgelet runs core modules built for WASI "
                f"preview 1 (e.g. Rust --target wasm32-wasip1, not wasm32-wasip2)")
        raise ModuleLoadError(f"{path} has an unsupported WebAssembly version "
                              f"({data[4:8].hex(' ')}); rebuild it as a core Wasm module (version 1)")
    return data


def load_module(path: Path, state_dir: Path | None) -> LoadedModule:
    """Compile ``path``, or map the code cached by an earlier start (same bytes, same engine).

    Why our own cache rather than wasmtime's ``Config.cache``: its location is per user
    and global, while ours lives in the state folder next to the data of the app, and the
    hit costs one mmap (``Module.deserialize_file``). Entries are keyed by the module's
    sha256, wasmtime's version and our engine settings, so an upgrade never loads stale code.
    """
    t0 = time.perf_counter()
    data = read_module_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    key = _cache_key(data)
    eng = engine()
    folder = cache_dir(state_dir)
    cached_file = folder / f"{key}.cwasm"
    if cached_file.is_file():
        try:
            module = wasmtime.Module.deserialize_file(eng, str(cached_file))
            return LoadedModule(module, digest, len(data), True, (time.perf_counter() - t0) * 1000)
        except wasmtime.WasmtimeError as exc:
            log.debug("ignoring unusable compile cache entry %s: %s", cached_file, exc)
    try:
        module = wasmtime.Module(eng, data)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()
        if "does not fit in pooling allocator" in str(exc) and _isolate_pool is not None:
            raise ModuleLoadError(
                f"{path} ran out of memory: its initial memory is larger than the "
                f"{_isolate_pool[1] // 1048576} MiB limit (limits.memory_mb); raise "
                f"limits.memory_mb or build the module with a smaller initial memory") from None
        raise ModuleLoadError(f"{path} is not a valid WebAssembly module: "
                              f"{' '.join(line.strip() for line in first[:3])}; "
                              f"rebuild it") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = cached_file.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(module.serialize())
        os.replace(tmp, cached_file)
    except OSError as exc:  # a read-only cache folder only costs the next start a compile
        log.debug("could not write the Wasm compile cache %s: %s", cached_file, exc)
    return LoadedModule(module, digest, len(data), False, (time.perf_counter() - t0) * 1000)


def _cache_key(data: bytes) -> str:
    h = hashlib.sha256()
    h.update(data)
    h.update(b"\0" + _wasmtime_version().encode() + b"\0" + _CONFIG_FINGERPRINT)
    if _isolate_pool is not None:  # static memories of this size compile to other code
        h.update(b";static=%d" % _isolate_pool[1])
    elif _address_space_limited():  # compact memories compile to different code
        h.update(b";compact")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _wasmtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("wasmtime")
    except PackageNotFoundError:  # pragma: no cover - always installed with edgelet
        return "unknown"
