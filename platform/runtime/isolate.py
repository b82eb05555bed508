"""The process that runs one Worker: ``python -m edgelet.runtime.isolate FD``.

The host starts one per Worker and talks to it over the socket ``FD`` (see
``edgelet.channel``). The first call is ``init`` with the Worker's name, script, env and
binding specs; after that the host sends events (``fetch``, ``scheduled``, ``rpc``,
``<kind>.<event>``) and the isolate calls back for binding operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
import io
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SDK_DIR = str(Path(__file__).resolve().parent / "sdk")
_UNSET = object()


class _LogStream(io.TextIOBase):
    """Sends a Worker's ``print`` output to the host, one log line per line."""

    def __init__(self, runtime: Runtime, level: str) -> None:
        self._runtime = runtime
        self._level = level
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._runtime.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._runtime.log(self._level, self._buffer)
            self._buffer = ""


class _LogHandler(logging.Handler):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self._runtime = runtime

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._runtime.log(record.levelname.lower(), self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            pass


class _ScheduledFetch:
    """The fetch handler under ``dev --test-scheduled``, as wrangler's middleware:
    ``/__scheduled?cron=EXPR`` runs the scheduled handler (cron ``""`` unless given) and
    answers "Ran scheduled event"; any other path is the Worker's own fetch. Called inside
    the caller's ``call_handler``, so it calls the Worker's handlers directly (one greenlet
    drive for ``run_sync``, not two)."""

    __slots__ = ("runtime", "fn", "missing")

    def __init__(self, runtime: Runtime, fn: Any, missing: LookupError | None) -> None:
        self.runtime, self.fn, self.missing = runtime, fn, missing

    async def fetch(self, *args: Any) -> Any:
        from urllib.parse import parse_qs, urlsplit

        from edgelet.runtime.entrypoints import ScheduledController, arity_of
        url = urlsplit(args[0].url)
        if url.path == "/__scheduled":
            from edgelet.runtime.http_types import Response
            controller = ScheduledController(parse_qs(url.query).get("cron", [""])[0],
                                             int(time.time() * 1000))
            fn, ctx = self.runtime._handler("scheduled")
            call = (controller, self.runtime.env, ctx)
            result = fn(*call[:arity_of(fn, 3)])
            if hasattr(result, "__await__"):
                await result
            return Response("Ran scheduled event")
        if self.fn is None:
            assert self.missing is not None
            raise self.missing
        result = self.fn(*args[:arity_of(self.fn, len(args))])
        return await result if hasattr(result, "__await__") else result


class Runtime:
    """Everything the ``workers`` SDK and the binding halves need inside the isolate."""

    current: Runtime | None = None

    def __init__(self, channel: Any) -> None:
        from edgelet.channel import NOT_NOW
        from edgelet.runtime.entrypoints import Env, ExecutionContext, call_handler
        from edgelet.runtime.http_types import request_from_wire, response_to_wire
        self._not_now = NOT_NOW  # looked up once: dispatch_now is on every request's path
        # the same for what every fetch uses (an import statement per request costs ~1 µs)
        self._context_class = ExecutionContext
        self._call_handler = call_handler
        self._request_from_wire = request_from_wire
        self._response_to_wire = response_to_wire
        self.channel = channel
        self.worker = ""
        self.module: Any = None
        self.env: Any = Env({})
        self.options: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        #: the Wasm module's runner when main is a .wasm file (edgelet.runtime.wasm.runner.WasmRunner)
        self.wasm: Any = None
        self._event_modules: dict[str, Any] = {}
        self._entry: Any = _UNSET
        #: streamed response bodies being sent: stream id -> the task sending it
        self._streams: dict[int, asyncio.Task[Any]] = {}
        #: how far each streamed response body is ahead of the client (edgelet.flow)
        self._stream_gates: dict[int, Any] = {}
        self._stream_ids = 0
        from edgelet.runtime.request_body import IncomingBodies
        #: request bodies streaming in from the host (edgelet.runtime.request_body)
        self.bodies = IncomingBodies(channel)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        Runtime.current = self

    # -- host calls ------------------------------------------------------------------
    async def call(self, kind: str, binding: str, method: str, *args: Any) -> Any:
        """Call a binding's host-side service; raises the host's error type by name."""
        from edgelet.channel import RemoteError
        try:
            return await self.channel.call("binding", kind, binding, method, list(args))
        except RemoteError as exc:
            raise rebuild_error(exc) from None

    async def call_host(self, kind: str, method: str, *args: Any) -> Any:
        """Call the host half of ``kind`` itself (see IsolateServices.call_host)."""
        from edgelet.channel import RemoteError
        try:
            return await self.channel.call("host", kind, method, list(args))
        except RemoteError as exc:
            raise rebuild_error(exc) from None

    def log(self, level: str, text: str) -> None:
        """Send a log line to the host; safe from any thread (print in a worker thread)."""
        if threading.get_ident() == self._loop_thread:
            self._send_log(level, text)
        else:
            self._loop.call_soon_threadsafe(self._send_log, level, text)

    def _send_log(self, level: str, text: str) -> None:
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:  # a lone surrogate: shown as its escape, not as U+FFFD
                text = loggable(text)  # (what the channel would make of it)
        self.channel.notify("log", level, text)

    # -- init ------------------------------------------------------------------------
    def init(self, spec: dict[str, Any]) -> dict[str, Any]:
        from edgelet.runtime.entrypoints import Env
        self.worker = spec["name"]
        self.options = spec
        main = Path(spec["main"])
        values: dict[str, Any] = dict(spec.get("vars", {}))
        values.update(spec.get("secrets", {}))
        for name, binding in spec.get("bindings", {}).items():
            values[name] = self._kind(binding["kind"]).make_binding(name, binding.get("options", {}), self)
        self.env = Env(values)
        for kind, options in spec.get("kinds", {}).items():
            setup = getattr(self._kind(kind), "setup", None)
            if setup is not None:
                setup(self, options)
        if main.suffix == ".wasm":
            return self._init_wasm(spec)
        add_python_path(spec.get("python_path", []))
        if str(main.parent) not in sys.path:
            sys.path.insert(0, str(main.parent))
        module_name = main.stem
        if module_name in sys.stdlib_module_names or module_name in sys.modules:
            # a script called queue.py must not replace the standard library's queue
            module_name = f"_edgelet_main_{module_name}"
        loader_spec = importlib.util.spec_from_file_location(module_name, main)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot load {main}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        from edgelet.runtime import devtools
        devtools.install(self.worker, spec.get("debugger"))
        before = set(sys.modules)
        loader_spec.loader.exec_module(module)
        self.module = module
        # the files this Worker imported: the host reloads it when one of them changes
        files = devtools.user_module_files(
            _platform_dirs(), [m for name, m in list(sys.modules.items()) if name not in before])
        if str(main.resolve()) not in files:
            files.append(str(main.resolve()))
        if spec.get("watch_imports"):  # only a host that reloads on edits (dev) reads them
            self._import_watch = asyncio.ensure_future(devtools.report_late_imports(
                _platform_dirs(), files, lambda more: self.channel.notify("files", more)))
        return {"handlers": sorted(self.handlers()), "classes": sorted(self.classes()),
                "entrypoints": sorted(self.entrypoint_classes()), "files": files}

    def _init_wasm(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A Wasm Worker: its module runs in this isolate under wasmtime (edgelet.runtime.wasm).

        Loading is not charged to the CPU watchdog: compiling is the platform's work (on
        several threads at once), and the module's own start function is bounded by the
        epoch deadline. After that the watchdog watches the loop thread's CPU outside
        Wasm: Wasm's own time is bounded per request by epoch interruption, which says
        limits.cpu_ms when it stops a request, and keeps the isolate.
        """
        from edgelet.runtime.wasm.runner import WasmRunner
        self.wasm = WasmRunner(spec, self)
        self.channel.sync_handler = self.dispatch_now  # a Wasm fetch needs no task
        watchdog = CpuWatchdog.current
        if watchdog is None:
            return self.wasm.load()
        with watchdog.paused():
            info = self.wasm.load()
        watchdog.use_clock(self.wasm.loop_cpu)
        return info

    def entrypoint_classes(self) -> set[str]:
        """Classes the platform can run: Worker entrypoints, Durable Objects, Workflows."""
        from edgelet.runtime.kinds import entrypoint_bases
        bases = entrypoint_bases()
        return {name for name, cls in self.classes().items()
                if issubclass(cls, bases) and cls not in bases}

    def classes(self) -> dict[str, type]:
        return {k: v for k, v in vars(self.module).items() if isinstance(v, type)}

    def handlers(self) -> set[str]:
        entry = self.default_entrypoint()
        found = set()
        from edgelet.runtime.kinds import handler_names
        for name in handler_names():
            if (entry is not None and callable(getattr(entry, name, None))) or \
                    callable(getattr(self.module, f"on_{name}", None)):
                found.add(name)
        return found

    def default_entrypoint(self) -> type | None:
        """``Default``, else the script's only WorkerEntrypoint subclass; found once per
        load, since every request asks."""
        if self._entry is _UNSET:
            from edgelet.runtime.entrypoints import WorkerEntrypoint
            entry = getattr(self.module, "Default", None)
            if not isinstance(entry, type):
                subclasses = [c for c in self.classes().values()
                              if issubclass(c, WorkerEntrypoint) and c is not WorkerEntrypoint
                              and c.__module__ == self.module.__name__]
                entry = subclasses[0] if len(subclasses) == 1 else None
            self._entry = entry
        return self._entry

    def new_context(self) -> Any:
        return self._context_class(self.tasks)

    def handler(self, name: str) -> tuple[Any, Any]:
        """The bound handler ``name`` of the default entrypoint (or ``on_name``), and ctx."""
        if name == "fetch" and self.options.get("test_scheduled"):
            return self._fetch_or_scheduled()
        return self._handler(name)

    def _fetch_or_scheduled(self) -> tuple[Any, Any]:
        """``dev --test-scheduled``: wrangler's middleware, as a wrapper of the fetch handler."""
        try:
            fn, ctx = self._handler("fetch")
        except LookupError as exc:  # a Worker with only a scheduled handler may still be tried
            return _ScheduledFetch(self, None, exc).fetch, self.new_context()
        return _ScheduledFetch(self, fn, None).fetch, ctx

    def _handler(self, name: str) -> tuple[Any, Any]:
        ctx = self.new_context()
        entry = self.default_entrypoint()
        if entry is not None and callable(getattr(entry, name, None)):
            instance = entry(ctx, self.env)
            return getattr(instance, name), ctx
        legacy = getattr(self.module, f"on_{name}", None)
        if callable(legacy):
            return legacy, ctx
        raise LookupError(
            f"Worker {self.worker!r} ({self.options.get('main')}) has no {name} handler: "
            f"define `async def {name}(self, ...)` on `class Default(WorkerEntrypoint)`")

    # -- events from the host -----------------------------------------------------------
    def dispatch_now(self, method: str, args: list[Any]) -> Any:
        """Answer a Wasm Worker's fetch right in the channel's reader, when its module runs
        on this thread (see edgelet.runtime.wasm); anything else returns NOT_NOW for ``dispatch``."""
        if method != "fetch" or self.wasm is None:
            return self._not_now
        try:
            return self.wasm.fetch_now(args[0])
        except MemoryError:
            os.write(2, b"edgelet: Worker exceeded its memory limit during fetch\n")
            os._exit(71)

    async def dispatch(self, method: str, args: list[Any]) -> Any:
        if method == "fetch":
            if self.wasm is not None:
                return await self.wasm.fetch(args[0])
            return await self.on_fetch(args[0])
        if method == "init":
            try:
                info = self.init(args[0])
                # what the import made (modules, the Worker's globals) lives as long as the
                # isolate: out of the collector's sight, a full collection no longer walks it
                # (a Worker holding 150,000 objects paused 105 ms per full collection)
                gc.freeze()
                return info
            except Exception as exc:
                # the host shows this to the user: their frames, not the platform's
                exc.edgelet_traceback = user_traceback(exc)  # type: ignore[attr-defined]
                raise
            finally:
                if CpuWatchdog.current is not None:
                    CpuWatchdog.current.starting = False
        if self.wasm is not None and method != "ping":
            raise LookupError(f"Wasm Worker {self.worker!r} has no {method} handler: Wasm "
                              f"Workers answer HTTP requests (fetch) only")
        if method == "scheduled":
            return await self.on_scheduled(args[0], args[1])
        if method == "rpc":
            return await self.on_rpc(*args[0])
        if method == "ping":
            return "pong"
        if method == "websocket":  # a client's message/close for an accept()ed socket
            from edgelet.runtime.websocket import on_event
            return await on_event(args[0])
        if method == "websocket.close":  # the host ends a socket served here (edgelet.websockets)
            from edgelet.runtime import websocket
            return False if websocket.direct is None else await websocket.direct.close_for_host(*args)
        if method == "websocket.release":  # a reload is coming (edgelet.websockets.release)
            from edgelet.runtime import websocket
            return [] if websocket.direct is None else await websocket.direct.release(args[0])
        kind, _, event = method.partition(".")
        if kind == "http":  # serving handed-over connections (edgelet.runtime.http_server)
            from edgelet.runtime import http_server
            return await http_server.on_call(self, method, args)
        return await self._kind(kind).handle_event(self, event, args[0] if args else None)

    def _kind(self, kind: str) -> Any:
        """The isolate half of a binding kind (``edgelet.bindings.<kind>.isolate``)."""
        module = self._event_modules.get(kind)
        if module is None:
            module = importlib.import_module(f"edgelet.bindings.{kind}.isolate")
            self._event_modules[kind] = module
        return module

    async def on_fetch(self, wire: list[Any]) -> list[Any]:
        request = self._request_from_wire(wire)
        body_id = wire[5] if len(wire) > 5 else None
        if body_id is not None:  # a large body, still arriving (edgelet.runtime.request_body)
            request._source = self.bodies.get(body_id)
        streaming = False
        try:
            fn, ctx = self.handler("fetch")
            resp = await self._call_handler(fn, request, self.env, ctx)
            if getattr(resp, "_stream", None) is not None:
                if len(wire) > 4 and wire[4]:  # the host takes a streamed body
                    streaming = True
                    return self._start_stream(resp, request, body_id)
                await resp._drain()
            return self._response_to_wire(resp)
        except MemoryError:
            raise
        except Exception as exc:
            return self.uncaught_in_fetch(request, exc)
        finally:
            if body_id is not None and not streaming:
                self.bodies.discard(body_id)

    def uncaught_in_fetch(self, request: Any, exc: Exception) -> list[Any]:
        """The 500 for a fetch handler that raised (in the log too, with its traceback):
        the same answer whether the host or the isolate's own HTTP server carried it."""
        text = traceback.format_exc()
        self.log("error", f"Uncaught exception in fetch {request.method} {request.url}\n{text}")
        body = f"Worker threw an exception: {type(exc).__name__}: {exc}\n\n{text}"
        return [500, [["content-type", "text/plain;charset=UTF-8"],
                      ["x-edgelet-error", type(exc).__name__]], body.encode("utf-8", "backslashreplace")]

    def _start_stream(self, resp: Any, request: Any, body_id: int | None = None) -> list[Any]:
        """Answer with status and headers now, then send the body's chunks as
        ``stream.chunk`` notifications and a last word: ``stream.end``, or ``stream.error``
        when the body raised, so that the host ends the client's connection without the
        body's last chunk (edgelet.response_stream). The last word is sent after a
        ``stream.cancel`` too: the host drops the chunks of a cancelled body until then.

        The host acknowledges each chunk once it is written to the client (``stream.ack``);
        past edgelet.flow.WINDOW bytes unacknowledged the producer waits, so a slow client
        slows the Worker down instead of filling the host's memory."""
        from edgelet.flow import CreditGate
        from edgelet.runtime.http_types import chunks_of
        self._stream_ids += 1
        stream_id = self._stream_ids
        channel = self.channel
        gate = self._stream_gates[stream_id] = CreditGate()

        async def pump() -> None:
            error: str | None = None
            chunks = chunks_of(resp)
            try:
                async for chunk in chunks:
                    channel.notify("stream.chunk", stream_id, chunk)
                    await gate.sent(len(chunk))
            except asyncio.CancelledError:
                pass  # nobody reads it any more (the client went away, a late answer)
            except Exception as exc:
                self.log("error", f"Uncaught exception in the streamed body of {request.method} "
                                  f"{request.url}\n{traceback.format_exc()}")
                error = loggable(f"{type(exc).__name__}: {exc}")
            finally:
                self._streams.pop(stream_id, None)
                self._stream_gates.pop(stream_id, None)
                if body_id is not None:
                    self.bodies.discard(body_id)
                if error is None:
                    channel.notify("stream.end", stream_id)
                else:
                    channel.notify("stream.error", stream_id, error)
                # the Worker's generator is closed now (its finally runs), not whenever it is
                # collected: one cancelled while the window was full sits at a yield
                with contextlib.suppress(Exception):
                    await chunks.aclose()  # type: ignore[attr-defined]  # an async generator

        task = asyncio.ensure_future(pump())
        self._streams[stream_id] = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return [resp.status, resp.headers.to_list(), None, stream_id]

    def on_notify(self, method: str, args: list[Any]) -> None:
        """A notification from the host: ``stream.ack`` (the client took a chunk),
        ``stream.cancel`` (the client went away), ``body.*`` (a request body streaming in)."""
        if method == "stream.ack":
            gate = self._stream_gates.get(args[0])
            if gate is not None:
                gate.ack(args[1])
        elif method == "stream.cancel":
            task = self._streams.pop(args[0], None)
            if task is not None:
                task.cancel()
        elif method == "ws.go":  # a handed-over WebSocket may write (edgelet.runtime.websocket_direct)
            from edgelet.runtime import websocket
            if websocket.direct is not None:
                websocket.direct.on_go(args[0])
        else:
            self.bodies.on_notify(method, args)

    async def on_scheduled(self, cron: str, scheduled_time_ms: int) -> dict[str, Any]:
        from edgelet.runtime.entrypoints import ScheduledController, call_handler
        controller = ScheduledController(cron, scheduled_time_ms)
        fn, ctx = self.handler("scheduled")
        await call_handler(fn, controller, self.env, ctx)
        return {"outcome": "ok"}

    async def on_rpc(self, entrypoint: str | None, method: str, payload: bytes) -> bytes:
        """A service binding's RPC: call ``method`` on a named (or the default) entrypoint."""
        import cloudpickle
        call = cloudpickle.loads(payload)  # (args, kwargs); None: read a property (await env.SVC.x)
        cls = self.classes().get(entrypoint) if entrypoint else self.default_entrypoint()
        if cls is None:
            raise LookupError(f"Worker {self.worker!r} has no entrypoint class "
                              f"{entrypoint or 'Default'!r}")
        from edgelet.runtime.kinds import handler_names
        if method.startswith("_") or method in handler_names():
            raise AttributeError(f"{cls.__name__}.{method} is not callable over RPC "
                                 f"(private or a handler)")
        if call is None:
            return await self._rpc_property(cls, method)
        fn = getattr(cls(self.new_context(), self.env), method, None)
        if not callable(fn):
            raise AttributeError(f"entrypoint {cls.__name__} of Worker {self.worker!r} has no "
                                 f"method {method!r}" + (" (it is a property: await it without "
                                                         "calling it)" if hasattr(cls, method) else ""))
        args, kwargs = call
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        from edgelet.runtime.rpc_values import check_rpc_value
        check_rpc_value(result, lambda: f"the value {cls.__name__}.{method}() of Worker {self.worker!r} returned")
        return cloudpickle.dumps(result)

    async def _rpc_property(self, cls: type, name: str) -> bytes:
        """``await env.SVC.name``: the value of a property or class attribute of the entrypoint
        (Cloudflare's RPC exposes those; an attribute set on the instance is not exposed)."""
        import cloudpickle
        where = f"entrypoint {cls.__name__} of Worker {self.worker!r}"
        if not hasattr(cls, name):
            raise AttributeError(f"{where} has no property or method {name!r}")
        value = getattr(cls(self.new_context(), self.env), name)
        if callable(value):
            raise TypeError(f"{where}: {name!r} is a method; call it (await env.SVC.{name}(...)) "
                            f"instead of awaiting it")
        if asyncio.iscoroutine(value):  # a property whose getter is async
            value = await value
        from edgelet.runtime.rpc_values import check_rpc_value
        check_rpc_value(value, lambda: f"the property {cls.__name__}.{name} of Worker {self.worker!r}")
        return cloudpickle.dumps(value)


def loggable(text: str) -> str:
    """``text`` as valid UTF-8 for the channel: a lone surrogate (a bad ``\\ud800`` in JSON,
    bytes decoded with ``surrogateescape``) becomes its escape, ``\\ud800``, so the line
    still says what the Worker printed instead of failing its print()."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _platform_dirs() -> tuple[str, ...]:
    """Folders of edgelet's own code (the runtime, the SDK, the bindings)."""
    import edgelet.bindings
    own = Path(__file__).resolve().parents[1]
    return (str(own) + os.sep, str(Path(edgelet.bindings.__file__).resolve().parent) + os.sep)


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback with edgelet's and importlib's frames left out.

    Why: a Worker that fails to load should show where its own code failed; the 15 to 25
    frames of the channel, the isolate and the import machinery above it say nothing to
    its author. Frames of libraries the Worker imports stay (they are the user's too).
    """
    own = _platform_dirs()

    def keep(frame: traceback.FrameSummary) -> bool:
        name = frame.filename
        return not name.startswith(own) and not name.startswith("<frozen importlib")

    def trim(te: traceback.TracebackException | None) -> None:
        seen: set[int] = set()
        while te is not None and id(te) not in seen:
            seen.add(id(te))
            te.stack = traceback.StackSummary.from_list([f for f in te.stack if keep(f)])
            trim(te.__cause__)
            te = te.__context__

    te = traceback.TracebackException.from_exception(exc)
    trim(te)
    return "".join(te.format())


def add_python_path(folders: list[str]) -> None:
    """Put a Worker's package folders (edgelet.python_deps) on sys.path after the SDK, so
    they win over edgelet's own site-packages but never shadow ``workers``, ``js``, ``pyodide``."""
    at = sys.path.index(SDK_DIR) + 1 if SDK_DIR in sys.path else 0
    sys.path[at:at] = [f for f in folders if f not in sys.path]


_ERROR_TYPES: dict[str, type[BaseException]] = {
    "ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError,
    "LookupError": LookupError, "RuntimeError": RuntimeError, "TimeoutError": TimeoutError,
    "AttributeError": AttributeError, "PermissionError": PermissionError,
}


def rebuild_error(exc: Any) -> BaseException:
    """Turn a host error into a Python exception of the same type name where we know it."""
    cls = _ERROR_TYPES.get(exc.type_name)
    if cls is None:
        err: BaseException = RuntimeError(f"{exc.type_name}: {exc.message}")
    elif cls is KeyError:
        err = KeyError(exc.message)
    else:
        err = cls(exc.message)
    err.remote = exc  # type: ignore[attr-defined]
    return err


async def _main(fd: int) -> None:
    from edgelet.channel import Channel
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    runtime: Runtime | None = None

    async def handler(method: str, args: list[Any]) -> Any:
        assert runtime is not None
        try:
            return await runtime.dispatch(method, args)
        except MemoryError:
            # Memory after a MemoryError is unreliable; a fresh isolate is the safe answer.
            os.write(2, f"edgelet: Worker exceeded its memory limit during {method}\n".encode())
            os._exit(71)

    channel = Channel(reader, writer, handler, lambda method, args: runtime.on_notify(method, args)
                      if runtime is not None else None)
    runtime = Runtime(channel)
    sys.stdout = _LogStream(runtime, "info")
    sys.stderr = _LogStream(runtime, "error")
    root = logging.getLogger()
    root.handlers[:] = [_LogHandler(runtime)]
    root.setLevel(logging.DEBUG)
    CpuWatchdog(float(os.environ.get("EDGELET_CPU_MS", "30000")) / 1000.0).start()
    from edgelet.runtime import handoff, websocket
    handoff.register("ws", websocket.adopt)  # a WebSocket the Worker accepted
    handoff.start()  # connections the host hands over (edgelet.handoff)
    await channel.serve()
    # The host is gone: leave now, before a handler that just lost its binding call answers a
    # connection this isolate serves itself (what the host did not see must not reach a client).
    os._exit(0)


#: CPU seconds the Worker's start (its script's top level, a Wasm module's start function)
#: may use in one stretch, when limits.cpu_ms is lower: cpu_ms is a per-event limit, and
#: importing a few libraries takes longer than a request should.
STARTUP_CPU_S = 10.0


class CpuWatchdog:
    """End the isolate when one stretch of work holds the event loop past the CPU limit.

    The loop beats every 50 ms; a thread checks how much CPU was spent since the last beat.
    Time blocked without CPU (``time.sleep``) is left to the host's request timeout. Exit
    code 70 tells the host what happened. While the Worker starts, the limit is at least
    STARTUP_CPU_S; work of the platform itself (compiling a Wasm module, on several
    threads) runs under ``paused()`` and is not counted at all.
    """

    current: CpuWatchdog | None = None

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.starting = True
        #: the CPU clock read: the process's, or the loop thread's outside Wasm (a Wasm
        #: Worker's requests are bounded by epoch interruption instead)
        self.clock: Any = time.process_time
        self._paused = 0
        self._loop = asyncio.get_running_loop()
        self._beat = self.clock()
        CpuWatchdog.current = self

    def start(self) -> None:
        self._tick()
        threading.Thread(target=self._watch, name="edgelet-cpu-watchdog", daemon=True).start()

    def use_clock(self, clock: Any) -> None:
        self.clock = clock
        self._beat = clock()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Do platform work on the loop thread without charging it to the Worker."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            self._beat = self.clock()

    def _tick(self) -> None:
        self._beat = self.clock()
        self._loop.call_later(0.05, self._tick)

    def _watch(self) -> None:
        while True:
            limit = max(self.limit_s, STARTUP_CPU_S) if self.starting else self.limit_s
            time.sleep(min(0.25, max(limit / 4, 0.01)))
            if not self._paused and self.clock() - self._beat > limit:
                os.write(2, f"edgelet: Worker exceeded its CPU limit of {limit * 1000:.0f} ms"
                            f"{' while starting' if self.starting else ''}\n".encode())
                os._exit(70)


def main() -> None:
    """``python -m edgelet.runtime.isolate FD``: the isolate started as its own program."""
    if SDK_DIR not in sys.path:
        sys.path.insert(0, SDK_DIR)
    run(int(sys.argv[1]))


def run(fd: int) -> None:
    """Serve the channel on ``fd`` until the host closes it, then leave."""
    _die_with_parent()
    _become_subreaper()
    ignore_group_signals()
    try:
        import uvloop
        uvloop.run(_main(fd))
    except ImportError:  # pragma: no cover - uvloop is a dependency; fall back anyway
        asyncio.run(_main(fd))
    # The host closed the channel: leave without running atexit hooks of user code.
    os._exit(0)


def ignore_group_signals() -> None:
    """Let the host alone decide when this process ends.

    Ctrl-C in a terminal (SIGINT) and ``kill -TERM -PGID`` signal the whole process group;
    the host then stops its isolates in order, and a stop is logged as a stop, not as a
    crash. A Python handler that does nothing is used rather than SIG_IGN, since SIG_IGN
    would be inherited across exec by every program a Worker runs.
    """
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore_signal)


def _ignore_signal(signum: int, frame: Any) -> None:
    return None


def _become_subreaper() -> None:
    """Adopt every orphan among this isolate's descendants (PR_SET_CHILD_SUBREAPER).

    Why: a process the Worker started with ``setsid`` or a double fork would otherwise be
    re-parented to init and outlive the isolate; adopted, the host finds it among the
    isolate's descendants and kills it when the isolate stops or restarts.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # not Linux
        pass


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this isolate when the host dies, even by ``kill -9``."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(0)
    except Exception:  # not Linux: the channel EOF still ends the isolate
        pass


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module: run the importable
    # module's main so that what the runtime imports (edgelet.runtime.websocket reads
    # Runtime.current) sees the Runtime that is running (without it, an isolate started
    # without the fork server could accept no WebSocket)
    from edgelet.runtime import isolate as _isolate

    _isolate.main()
