"""The platform host: owns the isolates, the binding plug-ins, the clock and the logs.

The HTTP server, the CLI and the testing API all drive one ``Host``. Plug-ins see it only
as :class:`edgelet.host_api.HostServices`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from edgelet.bindings import ALWAYS_ON, BindingPlugin, discover_plugins
from edgelet.channel import NOT_NOW, RemoteError
from edgelet.clock import Clock
from edgelet.config import PlatformConfig, WorkerConfig
from edgelet.cron import CronScheduler
from edgelet.logbus import LogBus
from edgelet.state import check_folder, database_path, open_database
from edgelet.supervisor import WASM_INSTANCE_SLOTS, Isolate, IsolateError, IsolateStartError

log = logging.getLogger("edgelet")
worker_log = logging.getLogger("edgelet.worker")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "log": logging.INFO,
           "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}


class Host:
    """Everything that runs: start it, serve with it, stop it."""

    def __init__(self, config: PlatformConfig, *, state_dir: Path | None,
                 clock: Clock | None = None, watch: bool = False,
                 logbus: LogBus | None = None, defer_unused: bool = False) -> None:
        self.config = config
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.clock = clock or Clock()
        self.watch = watch
        self.logbus = logbus or LogBus()
        #: with ``defer_unused``, the kinds no Worker declares wait for ``start_deferred``
        self.deferred = defer_unused
        used = {kind for w in config.workers for kind, decls in w.bindings.items() if decls}
        used |= ALWAYS_ON
        self.plugins: list[BindingPlugin] = discover_plugins(used.__contains__ if defer_unused else None)
        for plugin in self.plugins:
            plugin.configure(config)
        #: Worker -> binding name -> (the plug-in that owns it, its options): asked once
        self.env_table: dict[str, dict[str, tuple[BindingPlugin, dict[str, Any]]]] = {
            w.name: {name: (plugin, options) for plugin in self.plugins
                     for name, options in plugin.env_bindings(w).items()}
            for w in config.workers}
        self._kinds = {p.kind: p for p in self.plugins}
        #: Workers that always answer with whole bodies (Wasm): their requests carry no
        #: streaming flag, so the Wasm request path keeps its fixed request shape
        self._whole_body_workers = frozenset(w.name for w in config.workers if w.is_wasm)
        self.isolates: dict[str, Any] = {}
        #: isolates plug-ins started for code handed over at run time (Worker Loader)
        self._extra_isolates: list[Isolate] = []
        self._databases: dict[str, sqlite3.Connection] = {}
        self._busy = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._cron = CronScheduler(self)
        self._watcher: asyncio.Task[None] | None = None
        self._forkserver: Any = None
        #: Worker -> folders its isolates add to sys.path (its installed and vendored packages)
        self.python_paths: dict[str, list[str]] = {}
        from edgelet.websockets import SocketTable
        #: every accepted WebSocket (edgelet.websockets)
        self.websockets = SocketTable(self)
        #: unix socket of the dev terminal's debugger relay (edgelet.debug_relay), if any
        self.debugger: str | None = None
        #: ``dev --test-scheduled``: each Worker's fetch answers ``/__scheduled`` itself
        self.test_scheduled = False
        self.started = False
        #: True once ``start`` only waits for processes (the fork server, the isolates):
        #: ``edgelet dev`` does its own imports meanwhile
        self.waiting_for_processes = False

    # -- HostServices ----------------------------------------------------------------
    def database(self, name: str) -> sqlite3.Connection:
        """One connection per store, opened by :func:`edgelet.state.open_database` (WAL +
        synchronous=NORMAL survive kill -9 of the host; a damaged file or a read-only
        folder raises ``StateError`` with the path and the fix)."""
        conn = self._databases.get(name)
        if conn is None:
            path = None if self.state_dir is None else database_path(self.state_dir, name)
            conn = open_database(path)
            self._databases[name] = conn
        return conn

    def handlers(self, worker: str) -> frozenset[str] | None:
        info = getattr(self.isolates.get(worker), "info", None) or {}
        return frozenset(info["handlers"]) if "handlers" in info else None

    async def invoke(self, worker: str, event: str, payload: Any = None, *,
                     timeout: float | None = None, cancel: bool = False) -> Any:
        isolate = self.isolates.get(worker)
        if isolate is None:
            raise LookupError(f"no Worker named {worker!r}; Workers: {', '.join(self.isolates)}")
        self._enter()
        try:
            return await isolate.invoke(event, payload, timeout=timeout, cancel=cancel)
        finally:
            self._leave()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        self._idle.clear()

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())
            self._maybe_idle()

        task.add_done_callback(done)
        return task

    def plugin(self, kind: str) -> BindingPlugin:
        plugin = self._kinds.get(kind)
        if plugin is None:
            raise LookupError(f"no binding kind {kind!r}; kinds: {', '.join(sorted(self._kinds))}")
        return plugin

    # -- busy tracking (virtual time settles on it) ----------------------------------------
    def _enter(self) -> None:
        self._busy += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._busy -= 1
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self._busy == 0 and not self._tasks:
            self._idle.set()

    def busy_report(self) -> str:
        """What keeps the platform busy, for a person reading a timeout message."""
        names = sorted(t.get_name() for t in self._tasks)
        return f"events in flight: {self._busy}, background tasks: {names[:5]}"

    @property
    def is_idle(self) -> bool:
        return self._busy == 0 and not self._tasks

    async def wait_idle(self) -> None:
        """Return once no event is in flight and no background task runs."""
        while True:
            await self._idle.wait()
            # let callbacks that were just scheduled run, then check again
            for _ in range(3):
                await asyncio.sleep(0)
            if self.is_idle:
                return

    # -- life cycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Start plug-ins, then every isolate in parallel; raise if any Worker fails to load."""
        t0 = time.perf_counter()
        if self.state_dir is not None:
            check_folder(self.state_dir)  # a read-only folder or a damaged file: stop before any write
        from edgelet.python_deps import install_all
        self.python_paths = await install_all(self.config, self.state_dir)  # before anything starts
        # the fork server finishes its imports while the plug-ins open their stores
        forkserver = asyncio.ensure_future(self._start_forkserver())
        try:
            for plugin in self.plugins:
                await plugin.start(self)
        except BaseException:  # e.g. StateError: a state file it cannot use; leave nothing running
            self._forkserver = await forkserver
            await self.stop()
            raise
        self.waiting_for_processes = True
        self._forkserver = await forkserver
        for worker in self.config.workers:
            self.isolates[worker.name] = self._make_isolate(worker)
        results = await asyncio.gather(*(iso.start() for iso in self.isolates.values()),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]
        try:
            for worker in self.config.workers:
                self._check_handlers(worker)
        except IsolateStartError:
            await self.stop()
            raise
        for plugin in self.plugins:
            await plugin.after_start()
        self._cron.start()
        if self.watch:
            self._watcher = asyncio.ensure_future(self._watch_scripts())
        self.started = True
        log.debug("platform started in %.0f ms", (time.perf_counter() - t0) * 1000)

    async def start_deferred(self) -> None:
        """Import and start the plug-ins of the kinds no Worker declares (a Host made with
        ``defer_unused``, after ``start``).

        Why: ``edgelet dev`` is Ready sooner without them (their imports and stores are most
        of a small app's start), and no Worker can reach them: they hold no binding, run no
        class and intercept nothing. Only the control API and the explorer show them, and
        ``edgelet dev`` holds ``/cdn-cgi/`` requests until this returns. A plug-in that
        fails to start (a store from a newer edgelet) is logged and left out.
        """
        if not self.deferred:
            return
        self.deferred = False
        have = {p.kind for p in self.plugins}
        for plugin in discover_plugins(lambda kind: kind not in have):
            if not self.started:  # stopped meanwhile
                return
            plugin.configure(self.config)
            self.plugins.append(plugin)
            self._kinds[plugin.kind] = plugin
            try:
                await plugin.start(self)
                await plugin.after_start()
            except Exception as exc:
                log.error("the %s plug-in did not start, so the control API and the explorer leave "
                          "it out (no Worker declares a %s binding): %s", plugin.kind, plugin.kind, exc)
                self.plugins.remove(plugin)
                del self._kinds[plugin.kind]
                try:
                    await plugin.stop()
                except Exception:
                    log.debug("stopping %s after its failed start failed too", plugin.kind, exc_info=True)

    async def _start_forkserver(self) -> Any:
        """Isolates fork from one warm process; without it each is a fresh interpreter."""
        if not self.config.workers or os.environ.get("EDGELET_FORKSERVER", "1") == "0":
            from edgelet import prestart
            prestart.discard()  # one `edgelet dev` launched before it read the config
            return None
        from edgelet.forkserver import ForkServer
        server = ForkServer()
        try:
            await server.start()
        except Exception as exc:  # the platform still works, only slower to start isolates
            log.warning("fork server unavailable (%s); isolates start as new interpreters", exc)
            await server.stop()
            return None
        return server

    def _check_handlers(self, worker: WorkerConfig) -> None:
        info = self.isolates[worker.name].info
        handlers = set(info.get("handlers", []))
        if not handlers and not info.get("entrypoints") and not worker.is_wasm:
            raise IsolateStartError(
                f"Worker {worker.name!r}: {worker.main} defines no handler. Fix: add "
                f"`class Default(WorkerEntrypoint)` with `async def fetch(self, request)` "
                f"(from workers import WorkerEntrypoint, Response)")
        if worker.crons and "scheduled" not in handlers:
            log.warning("Worker %r has triggers.crons but no scheduled handler", worker.name)

    async def stop(self) -> None:
        """Stop crons and watchers, let plug-ins flush, then end every isolate."""
        self._cron.stop()
        if self._watcher is not None:
            self._watcher.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.websockets.close_handed()  # before the isolates serving them end
        for plugin in reversed(self.plugins):
            try:
                await plugin.stop()
            except Exception:
                log.exception("stopping %s failed", plugin.kind)
        await asyncio.gather(*(iso.stop() for iso in [*self.isolates.values(), *self._extra_isolates]),
                             return_exceptions=True)
        self._extra_isolates.clear()
        if self._forkserver is not None:
            await self._forkserver.stop()
            self._forkserver = None
        for conn in self._databases.values():
            conn.close()
        self._databases.clear()
        self.started = False

    # -- isolates ------------------------------------------------------------------------
    def isolate_spec(self, worker: WorkerConfig) -> dict[str, Any]:
        """What an isolate needs to run a Worker, as data."""
        bindings = {name: {"kind": plugin.kind, "options": options}
                    for name, (plugin, options) in self.env_table[worker.name].items()}
        kinds = {}
        for plugin in self.plugins:
            options = plugin.isolate_options(worker)
            if options is not None:
                kinds[plugin.kind] = options
        return {"name": worker.name, "main": str(worker.main), "vars": worker.vars,
                "secrets": worker.secrets, "bindings": bindings, "kinds": kinds,
                "state_dir": str(self.state_dir) if self.state_dir else None,
                "virtual_clock": self.clock.virtual, "python_path": self.python_paths.get(worker.name, []),
                "debugger": self.debugger, "watch_imports": self.watch,
                "test_scheduled": self.test_scheduled}

    def _make_isolate(self, worker: WorkerConfig) -> Any:
        limits = worker.limits
        spec = self.isolate_spec(worker)
        reserved_mb = 0
        if worker.is_wasm:  # the isolate enforces these per request (edgelet.runtime.wasm)
            spec["limits"] = {"cpu_ms": limits.cpu_ms, "memory_mb": limits.memory_mb,
                              "request_timeout_ms": limits.request_timeout_ms,
                              "instance_slots": WASM_INSTANCE_SLOTS}
            # the pool reserves (never commits) a memory_mb slot per instance, on top of
            # what any isolate gets (compiling a large module needs room of its own)
            reserved_mb = limits.memory_mb * WASM_INSTANCE_SLOTS
        isolate = Isolate(worker.name, spec, cpu_ms=limits.cpu_ms,
                          memory_mb=limits.memory_mb, reserved_mb=reserved_mb,
                          request_timeout=limits.request_timeout_ms / 1000.0,
                          on_call=lambda method, args: self._on_isolate_call(worker.name, method, args),
                          on_log=self._on_worker_log, forkserver=self._forkserver,
                          on_websocket=self.websockets.on_notify,
                          on_call_now=lambda method, args: self._on_isolate_call_now(worker.name, method, args))
        isolate.on_exit = self.websockets.on_isolate_exit  # its handed-over sockets come back
        isolate.start_hooks.append(self.websockets.on_isolate_start)  # ... and go to the next
        return isolate

    async def start_isolate(self, name: str, main: Path, *, like: str, env: dict[str, Any]) -> Isolate:
        """Start an isolate for a script a plug-in was handed at run time (a Worker
        Loader's code): the limits, fork server and logs of Worker ``like``, ``env`` as its
        vars and no bindings. Stopped with the host; raises IsolateStartError like a Worker."""
        limits = self.config.worker(like).limits
        spec = {"name": name, "main": str(main), "vars": env, "secrets": {}, "bindings": {}, "kinds": {},
                "state_dir": None, "virtual_clock": self.clock.virtual}

        async def refuse(method: str, args: list[Any]) -> Any:
            raise PermissionError(f"{name} has no bindings (a loaded Worker's env holds data only)")

        isolate = Isolate(name, spec, cpu_ms=limits.cpu_ms, memory_mb=limits.memory_mb,
                          request_timeout=limits.request_timeout_ms / 1000.0, on_call=refuse,
                          on_log=self._on_worker_log, forkserver=self._forkserver)
        self._extra_isolates.append(isolate)
        try:
            await isolate.start()
        except BaseException:
            self._extra_isolates.remove(isolate)
            await isolate.stop()
            raise
        return isolate

    async def stop_isolate(self, isolate: Isolate) -> None:
        """End an isolate started with ``start_isolate``."""
        if isolate in self._extra_isolates:
            self._extra_isolates.remove(isolate)
        await isolate.stop()

    async def _on_isolate_call(self, worker: str, method: str, args: list[Any]) -> Any:
        """A call from an isolate: ``binding`` (an ``env`` binding the Worker declares) or
        ``host`` (a kind's isolate half to its own host half; the plug-in checks it)."""
        if method == "binding":
            kind, binding, op, op_args = args
            owner = self.env_table[worker].get(binding)
            if owner is None or owner[0].kind != kind:
                raise PermissionError(f"Worker {worker!r} has no {kind} binding named {binding!r}")
            return await owner[0].handle_call(worker, binding, op, op_args)
        if method == "host":
            kind, op, op_args = args
            return await self.plugin(kind).handle_isolate_call(worker, op, op_args)
        if method == "websocket":
            return self.websockets.handle_call(worker, args)
        raise LookupError(f"unknown host call {method!r}")

    def _on_isolate_call_now(self, worker: str, method: str, args: list[Any]) -> Any:
        """A call from an isolate a plug-in answers without a task (``isolate_call_now``),
        or ``NOT_NOW`` for :meth:`_on_isolate_call`."""
        if method == "binding":
            kind, binding, op, op_args = args
            owner = self.env_table[worker].get(binding)
            if owner is not None and owner[0].kind == kind:
                return owner[0].binding_call_now(worker, binding, op, op_args)
            return NOT_NOW  # refused by _on_isolate_call, with the reason
        if method == "host":
            plugin = self._kinds.get(args[0])
            if plugin is not None:
                return plugin.isolate_call_now(worker, args[1], args[2])
        return NOT_NOW

    def _on_worker_log(self, worker: str, level: str, text: str) -> None:
        worker_log.log(_LEVELS.get(level, logging.INFO), "[%s] %s", worker, text)
        self.logbus.publish({"type": "log", "worker": worker, "level": level, "message": text})

    async def close_websockets(self, reason: str, *, worker: str | None = None,
                               hibernated: bool = True) -> None:
        """Close the clients' WebSockets of ``worker`` (every Worker's when None) with 1012
        (Service Restart) and ``reason``; see SocketTable.close_for_restart."""
        await self.websockets.close_for_restart(reason, worker=worker, hibernated=hibernated)

    async def reload(self, worker_name: str) -> None:
        """Restart one Worker's isolate with its script as it is on disk now."""
        isolate = self.isolates[worker_name]
        await self.websockets.release(worker_name)  # its sockets leave between frames
        # sockets taken with plain accept() cannot follow the code: told before the old
        # process ends, so they hear 1012 (a restart), not 1011 (a crash)
        await self.close_websockets(f"Worker {worker_name!r} was reloaded (its code changed); "
                                    "reconnect", worker=worker_name, hibernated=False)
        try:
            await isolate.restart()
            log.info("Reloaded Worker %r", worker_name, extra={"worker": worker_name})
        except IsolateStartError as exc:
            log.error("%s\n%s", exc, exc.traceback or "", extra={"worker": worker_name})
            return
        except IsolateError as exc:  # replaced (a config edit) or stopped while it drained:
            log.info("Worker %r was not reloaded: %s", worker_name, exc,  # what replaced it
                     extra={"worker": worker_name})                       # has the new code
            return
        for plugin in self.plugins:
            await plugin.after_reload(worker_name)

    async def replace_worker(self, worker: WorkerConfig) -> None:
        """Run ``worker`` (a changed config of a Worker with the same name and bindings) in a
        new isolate; the old one ends. Raises IsolateStartError and keeps nothing running
        for it when the new one fails to load (the next edit retries)."""
        index = next(i for i, w in enumerate(self.config.workers) if w.name == worker.name)
        self.config.workers[index] = worker
        self.env_table[worker.name] = {name: (plugin, options) for plugin in self.plugins
                                       for name, options in plugin.env_bindings(worker).items()}
        self._whole_body_workers = frozenset(w.name for w in self.config.workers if w.is_wasm)
        old = self.isolates[worker.name]
        self.isolates[worker.name] = self._make_isolate(worker)
        await self.close_websockets(f"Worker {worker.name!r} was restarted (its config changed); "
                                    "reconnect", worker=worker.name, hibernated=False)
        await old.stop()
        await self.isolates[worker.name].start()
        self._check_handlers(worker)

    def workers_importing(self, path: Path) -> list[str]:
        """The Workers whose isolate imported ``path`` at start (its script, its modules).

        A Worker that failed to load reported nothing: any ``.py`` file in its script's
        folder may be the fix, so it counts as importing all of them.
        """
        real = os.path.realpath(path)
        names = []
        for w in self.config.workers:
            info = getattr(self.isolates.get(w.name), "info", None) or {}
            files = info.get("files")
            if files is None:
                if w.main.parent in Path(real).parents or Path(real) == w.main:
                    names.append(w.name)
            elif real in files:
                names.append(w.name)
        return names

    async def _watch_scripts(self) -> None:
        """Reload the Workers that imported a file that changed (each isolate says which
        files it imported; see edgelet.runtime.devtools), not every Worker beside it."""
        import watchfiles
        folders = {w.main.parent for w in self.config.workers}
        for iso in self.isolates.values():
            folders.update(Path(f).parent for f in (getattr(iso, "info", None) or {}).get("files", []))
        roots = _outermost(folders)
        async for changes in watchfiles.awatch(*roots, debounce=50, step=20):
            touched: set[str] = set()
            for _, path in changes:
                if Path(path).suffix in (".py", ".wasm"):
                    touched.update(self.workers_importing(Path(path)))
            if touched:
                log.info("%s changed: reloading %s", ", ".join(sorted(
                    Path(p).name for _, p in changes if Path(p).suffix in (".py", ".wasm"))),
                    ", ".join(sorted(touched)))
            for name in sorted(touched):
                await self.reload(name)

    # -- convenience for HTTP and tests ------------------------------------------------------
    async def fetch(self, worker: str, method: str, url: str, headers: list[list[str]],
                    body: Any, *, stream: bool = False) -> list[Any]:
        """Run a Worker's fetch handler; isolate failures become a 5xx response.

        ``[status, headers, body]``; with ``stream=True`` a body the Worker streams is an
        async iterator of bytes chunks instead of bytes (whole bodies stay bytes). ``body`` is
        bytes, or an edgelet.request_body.StreamedBody still arriving (``stream=True`` only)."""
        isolate = self.isolates.get(worker)
        if isolate is None:
            raise LookupError(f"no Worker named {worker!r}; Workers: {', '.join(self.isolates)}")
        # what self.invoke does, one coroutine frame fewer on every request's way in and out
        self._enter()
        try:
            if not isinstance(body, bytes):  # still arriving: edgelet.request_body.StreamedBody
                answer = await isolate.fetch_streaming([method, url, headers, b"", True], body)
            elif not stream or worker in self._whole_body_workers:
                return await isolate.invoke("fetch", [method, url, headers, body])
            else:
                answer = await isolate.invoke("fetch", [method, url, headers, body, True])
        except IsolateError as exc:
            return error_response(exc.status, str(exc))
        except RemoteError as exc:  # the isolate failed outside the handler (an answer it could not send)
            return self._fetch_failed(worker, exc)
        finally:
            self._leave()
        return answer  # a streamed body is an edgelet.response_stream.ResponseStream

    @staticmethod
    def _fetch_failed(worker: str, exc: RemoteError) -> list[Any]:
        """The 500 for a fetch the isolate failed as a call (not the handler's own 500: e.g. an
        answer holding text the channel cannot carry), logged as the Worker's error."""
        text = (f"Worker {worker!r} failed to answer fetch: {exc.type_name}: {exc.message}; "
                f"the platform could not run the request or carry the Worker's answer")
        log.error("%s%s", text, f"\n{exc.traceback}" if exc.traceback else "", extra={"worker": worker})
        return error_response(500, text)

    async def scheduled(self, worker: str, cron: str, when_ms: int | None = None) -> Any:
        isolate = self.isolates[worker]
        self._enter()
        try:
            return await isolate.invoke("scheduled", cron, self.clock.now_ms() if when_ms is None else when_ms)
        finally:
            self._leave()


    def streams_request_bodies(self, worker: str) -> bool:
        """Whether a large request body may reach ``worker`` while it arrives (Python
        Workers; a Wasm Worker takes whole bodies)."""
        return worker not in self._whole_body_workers


def _outermost(folders: set[Path]) -> list[Path]:
    """``folders`` without those inside another one (one watch covers its subfolders)."""
    return sorted(f for f in folders if not any(o in f.parents for o in folders))


def error_response(status: int, message: str) -> list[Any]:
    return [status, [["content-type", "text/plain;charset=UTF-8"]], message.encode()]
