"""Host side of isolates: start, call, supervise and restart one process per Worker.

A Worker's faults stay in its process: when it exits, segfaults, runs past its CPU limit
or its memory cap, the calls in flight fail with an :class:`IsolateError` that says what
happened, and the supervisor starts a fresh process for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from edgelet.channel import Channel, ChannelClosed, RemoteError
from edgelet.response_stream import StreamTable

log = logging.getLogger("edgelet.isolate")

#: exit codes the isolate's own watchdogs use, so the host can say what happened
EXIT_CPU_LIMIT = 70
EXIT_MEMORY = 71

_SIGNAL_HINTS: dict[int, str] = {  # Signals are ints: a raw exit signal number finds its hint
    signal.SIGSEGV: "segmentation fault",
    signal.SIGKILL: "killed",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
}


class IsolateError(Exception):
    """A call could not complete because of the isolate itself (not the handler)."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class IsolateReloaded(IsolateError):
    """The call was cut off because the Worker's code changed (a save under ``edgelet dev``)
    and its process was replaced before the call finished: not the Worker's fault."""


class IsolateStartError(IsolateError):
    """The Worker's script failed to import or has no handler."""

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message, 500)
        self.traceback = traceback


#: address space an isolate gets beyond its Worker's memory_mb: interpreter, SDK, libraries
ISOLATE_OVERHEAD_MB = 256
#: instances a Wasm Worker's isolate keeps slots for (edgelet.runtime.wasm.engine's pool); the
#: isolate runs at most (slots - 1) // 2 pool threads so that they can never run out
WASM_INSTANCE_SLOTS = 16
#: how long a reload waits for the old isolate's calls in flight (its reload stays < 500 ms)
RELOAD_DRAIN_S = 0.25


class Isolate:
    """One running process for one Worker, restarted on demand after a crash."""

    def __init__(self, name: str, spec: dict[str, Any], *, cpu_ms: int, memory_mb: int,
                 request_timeout: float, reserved_mb: int = 0,
                 on_call: Callable[[str, list[Any]], Any],
                 on_log: Callable[[str, str, str], None], forkserver: Any = None,
                 on_websocket: Callable[[str, list[Any]], None] | None = None,
                 on_call_now: Callable[[str, list[Any]], Any] | None = None) -> None:
        self.name = name
        self._forkserver = forkserver
        self.spec = spec
        self.cpu_ms = cpu_ms
        self.memory_mb = memory_mb
        #: the process's RLIMIT_AS: the Worker's memory, the interpreter and libraries, and
        #: ``reserved_mb`` of address space reserved but not used up front (a Wasm pool)
        self.address_space_mb = memory_mb + ISOLATE_OVERHEAD_MB + reserved_mb
        self.request_timeout = request_timeout
        self._on_call = on_call
        #: answers a call without a task, or returns channel.NOT_NOW (Channel.sync_handler)
        self._on_call_now = on_call_now
        self._on_log = on_log
        self._on_websocket = on_websocket
        self._process: Any = None
        self._channel: Channel | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[dict[str, Any]] | None = None
        self._stopping = False
        #: the channel of the process a reload replaced: its unanswered calls say so
        self._reloaded: Channel | None = None
        #: the channel whose process has loaded the script: calls go only to it, never to a
        #: process still importing (one whose import fails is SIGKILLed, and a call sent to
        #: it meanwhile would fail as a crash, counting e.g. a queue delivery's attempt)
        self._loaded: Channel | None = None
        self.info: dict[str, Any] = {}
        self.broken: IsolateStartError | None = None
        self.restarts = 0
        #: streamed response bodies in flight, by (channel, stream id) (edgelet.response_stream)
        self._streams = StreamTable(name)
        #: request bodies being pumped to the isolate: body id -> its flow-control gate
        self._body_gates: dict[int, Any] = {}
        self._body_ids = 0
        #: kind -> callback(conn, data, meta) for connections the isolate hands back
        #: (edgelet.handoff); shared by every process this Isolate starts
        self.handoff_handlers: dict[str, Any] = {}
        #: the running process's end of its handoff socket (None while none runs)
        self.handoff: Any = None
        #: called with (name, channel) at once when a process's channel ends, whatever the
        #: reason, before its exit code is known (edgelet.websockets takes back the sockets
        #: that process served, before a next process may start); ``exit_hooks`` below run
        #: later, once the exit is known and can be put into words
        self.on_exit: Callable[[str, Channel], None] | None = None
        #: notification method -> callback(args), for features beyond the ones below
        self.notify_hooks: dict[str, Callable[[list[Any]], None]] = {}
        #: callback(channel, message, reason) once a process ended: ``message`` is what a call
        #: in flight on it was told, ``reason`` "crashed", "reloaded" or "stopping"
        self.exit_hooks: list[Callable[[Channel, str, str], None]] = []
        #: objects with ``async before_reload(channel)`` and ``busy(channel) -> bool``: work a
        #: reload lets finish (within RELOAD_DRAIN_S) beside the channel's calls
        self.reload_hooks: list[Any] = []
        #: called with (name, channel) once a process has loaded the script: edgelet.websockets
        #: hands it the sockets a process that died (or failed to start) left behind
        self.start_hooks: list[Callable[[str, Channel], None]] = []

    # -- life cycle --------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def loaded_channel(self) -> Channel | None:
        """The running process's channel once it has loaded the script (None while none
        runs or one is still importing it): what may be handed work."""
        channel = self._channel
        if channel is None or channel.closed or channel is not self._loaded:
            return None
        return channel

    @property
    def stopped(self) -> bool:
        """stop() has run: this Isolate starts no process again (the platform is stopping, or
        a config edit replaced it with a new Isolate)."""
        return self._stopping

    async def start(self) -> dict[str, Any]:
        """Start the process and import the script; raise IsolateStartError on failure, and
        IsolateError once stop() has run (see _live_channel)."""
        self._refuse_if_stopped()
        if self._needs_start():
            self._starting = asyncio.ensure_future(self._start())
        assert self._starting is not None  # _needs_start() is True while there is none
        return await asyncio.shield(self._starting)

    def _needs_start(self) -> bool:
        """No start under way or done for a live channel (the last one failed or died)."""
        starting = self._starting
        if starting is None:
            return True
        if not starting.done():
            return False
        if starting.cancelled() or starting.exception() is not None:
            return True
        # started once, but the process has died since: the supervisor may not have
        # noticed yet, and the next call must not be sent down the dead channel
        return self._channel is None or self._channel.closed

    async def _start(self) -> dict[str, Any]:
        from edgelet import handoff
        host_sock, child_sock = socket.socketpair()
        handoff_host, handoff_child = handoff.socketpair()
        # the cap covers the interpreter, SDK and libraries too, so the Worker gets its own
        cap = self.address_space_mb * 1024 * 1024
        env = {"EDGELET_CPU_MS": str(self.cpu_ms), "EDGELET_MEMORY_MB": str(self.memory_mb),
               "PYTHONUNBUFFERED": "1"}
        forkserver = self._forkserver
        try:
            if forkserver is not None and forkserver.alive:
                self._process = await forkserver.spawn(child_sock.fileno(), env, cap,
                                                       handoff_fd=handoff_child.fileno())
            else:
                self._process = await self._exec(child_sock, env, cap, handoff_child)
        except BaseException:
            handoff_host.close()
            raise
        finally:
            child_sock.close()
            handoff_child.close()
        if self._stopping:  # stop() ran while the process was being spawned: it must not live
            handoff_host.close()
            host_sock.close()
            process, self._process = self._process, None
            kill_descendants(process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            self._refuse_if_stopped()
        if self.handoff is not None:
            self.handoff.close()
        self.handoff = handoff.Endpoint(handoff_host, self.handoff_handlers)
        self.handoff.start()
        reader, writer = await asyncio.open_connection(sock=host_sock, limit=1 << 20)
        channel = Channel(reader, writer, self._handle,
                          lambda method, args: self._notify(method, args, channel))
        channel.sync_handler = self._on_call_now
        self._channel = channel
        self._serve_task = asyncio.ensure_future(self._serve(channel, self._process))
        asyncio.ensure_future(self._watch_exit(channel, self._process))
        try:
            self.info = await channel.call("init", self.spec)
        except RemoteError as exc:
            self.broken = IsolateStartError(
                f"Worker {self.name!r}: {self.spec['main']} failed to load: "
                f"{exc.type_name}: {exc.message}", exc.traceback)
            await self._kill()
            raise self.broken from None
        except ChannelClosed:
            code = await self._exit_code()
            self.broken = IsolateStartError(
                f"Worker {self.name!r}: the isolate exited while loading {self.spec['main']} "
                f"({describe_exit(code, self, starting=True)})")
            raise self.broken from None
        self.broken = None
        self._loaded = channel
        log.debug("isolate %s started (pid %s)", self.name, self._process.pid)
        for hook in list(self.start_hooks):
            try:
                hook(self.name, channel)
            except Exception:
                log.exception("an isolate start hook failed")
        return self.info

    @staticmethod
    async def _exec(child_sock: socket.socket, env: dict[str, str], cap: int,
                    handoff_sock: socket.socket) -> Any:
        """Start the isolate as a fresh interpreter (when no fork server runs)."""
        from edgelet.handoff import ENV_FD
        env = {**env, ENV_FD: str(handoff_sock.fileno())}

        def limit() -> None:  # runs in the child between fork and exec
            try:
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            except (ValueError, OSError):
                pass

        return await asyncio.create_subprocess_exec(
            sys.executable, "-X", "faulthandler", "-m", "edgelet.runtime.isolate",
            str(child_sock.fileno()), pass_fds=(child_sock.fileno(), handoff_sock.fileno()), preexec_fn=limit,
            stdin=asyncio.subprocess.DEVNULL, env={**os.environ, **env})

    async def _serve(self, channel: Channel, process: Any) -> None:
        await channel.serve()
        self._exited(channel)
        if self._channel is channel and self.handoff is not None:  # this process's socket
            self.handoff.close()
            self.handoff = None
        if self._streams.has_streams(channel):  # bodies it was still streaming are cut short
            words = f"{describe_exit(await self._exit_code(process), self)} while streaming the response body"
            self._streams.end_channel(channel, self._ended_words(channel, words))
        if self.exit_hooks:
            await self._tell_exit(channel, process)
        if self._stopping or self._channel is not channel:
            return
        code = await self._exit_code(process)
        level = logging.INFO if code in (-signal.SIGTERM, -signal.SIGINT) else logging.WARNING
        starting = self._starting is not None and not self._starting.done()
        log.log(level, "Worker %r isolate stopped (%s); it restarts on the next event",
                self.name, describe_exit(code, self, starting=starting), extra={"worker": self.name})
        self._channel = None
        self._starting = None
        self.restarts += 1

    async def _tell_exit(self, channel: Channel, process: Any) -> None:
        """Run the exit hooks, with the words a call in flight on ``channel`` got."""
        code = await self._exit_code(process)
        if channel is self._reloaded:
            reason, text = "reloaded", (f"Worker {self.name!r} was reloaded (its code changed) while "
                                        f"handling fetch; send the request again")
        elif self._stopping:
            reason, text = "stopping", (f"edgelet dev is stopping: Worker {self.name!r} did not finish "
                                        f"this request in time")
        else:
            reason, text = "crashed", (f"Worker {self.name!r} {describe_exit(code, self)} while handling "
                                       f"fetch; the isolate has been restarted")
        for hook in list(self.exit_hooks):
            try:
                hook(channel, text, reason)
            except Exception:
                log.exception("an isolate exit hook failed")

    @staticmethod
    async def _watch_exit(channel: Channel, process: Any) -> None:
        """Close the channel when the process ends, whether or not the socket says so.

        Why: a child the Worker forked holds a copy of the isolate's socket, so the host
        would see no EOF when the isolate dies, and the call in flight would wait for its
        timeout. The process's exit is the truth; closing the channel fails its calls now.
        """
        await process.wait()
        if not channel.closed:
            channel.close()

    async def _exit_code(self, process: Any = None) -> int | None:
        process = process or self._process
        if process is None:
            return None
        try:
            return await asyncio.wait_for(process.wait(), 2.0)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def _kill(self) -> None:
        process, channel = self._process, self._channel
        self._channel = None
        self._starting = None
        if self.handoff is not None:
            self.handoff.close()
            self.handoff = None
        if channel is not None:
            channel.close()
            self._exited(channel)
            self._streams.end_channel(channel, self._ended_words(
                channel, "was stopped (unresponsive, or replaced) while streaming the response body"))
        if process is not None and process.returncode is None:
            kill_descendants(process.pid)
            try:
                process.kill()
            except ProcessLookupError:
                pass
            await process.wait()

    def _ended_words(self, channel: Channel, crashed: str) -> str:
        """Why a body ``channel``'s process streamed was cut short (``crashed``: what the
        exit was, for a process that was neither reloaded nor stopped)."""
        if channel is self._reloaded:
            return f"Worker {self.name!r} was reloaded (its code changed) while streaming the response body"
        if self._stopping:
            return f"edgelet dev is stopping: Worker {self.name!r} had not finished streaming the response body"
        return f"Worker {self.name!r} {crashed}"

    def _exited(self, channel: Channel) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit(self.name, channel)
            except Exception:
                log.exception("the isolate exit callback failed")

    async def stop(self) -> None:
        """End the isolate for good (the platform stops); a clean stop, not a crash."""
        self._stopping = True
        await self._kill()
        log.debug("Worker %r isolate stopped (the platform is stopping)", self.name,
                  extra={"worker": self.name})
        if self._serve_task is not None:
            self._serve_task.cancel()

    async def restart(self) -> dict[str, Any]:
        """Replace the process (after a script edit). Calls in flight on the old one get up
        to RELOAD_DRAIN_S to finish first (a save must not fail the request being served); one
        still running then is answered 503 saying the Worker was reloaded, not that it crashed."""
        self._refuse_if_stopped()
        channel = self._channel
        if channel is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RELOAD_DRAIN_S
            for hook in self.reload_hooks:
                await hook.before_reload(channel)
            while (channel.pending or any(h.busy(channel) for h in self.reload_hooks)) \
                    and not channel.closed and loop.time() < deadline:
                await asyncio.sleep(0.005)
            self._reloaded = channel
        self._refuse_if_stopped()  # replaced (config edit) or stopped while it drained
        await self._kill()
        return await self.start()

    def hold_deadlines(self, hold: bool) -> None:
        """Pause (or resume) request timeouts: the Worker sits at a pdb prompt."""
        channel = self._channel
        if channel is not None:
            channel.hold_deadlines() if hold else channel.release_deadlines()

    # -- calls -------------------------------------------------------------------------
    async def _live_channel(self) -> Channel:
        """The running process's channel, starting one when none runs; never after stop():
        a stopped Worker's process would come back with the old config, outside the
        platform that replaced it, and nothing would answer its calls."""
        for _ in range(3):
            channel = self.loaded_channel
            if channel is not None:
                return channel
            # none runs, or one is still loading the script: wait for that start (or make
            # one); a script that fails to load raises IsolateStartError here
            await self.start()
        raise IsolateError(f"Worker {self.name!r}: its isolate ended as soon as it started, "
                           f"three times; see the log above and send the request again", 503)

    def _refuse_if_stopped(self) -> None:
        if self._stopping:
            raise IsolateError(f"Worker {self.name!r} has stopped (edgelet is stopping or "
                               f"restarting its Workers); send the request again", 503)

    async def invoke(self, method: str, *args: Any, timeout: float | None = None,
                     cancel: bool = False) -> Any:
        """Send one event to the Worker; errors say whether the isolate or the handler failed.

        ``cancel``: if the answer does not come in time, the isolate cancels the event (a
        binding whose events hold something, as a Durable Object's hold its input gate,
        asks for it; a fetch's handler runs on, its answer dropped)."""
        channel = await self._live_channel()
        process = self._process
        limit = self.request_timeout if timeout is None else timeout
        try:
            answer = await channel.call(method, *args, timeout=limit, cancel=cancel,
                                        on_late=self._late_answer if method == "fetch" else None)
        except ChannelClosed:
            if channel is self._reloaded:
                raise IsolateReloaded(f"Worker {self.name!r} was reloaded (its code changed) while "
                                      f"handling {method}; send the request again", 503) from None
            code = await self._exit_code(process)
            raise IsolateError(f"Worker {self.name!r} {describe_exit(code, self)} while handling "
                               f"{method}; the isolate has been restarted", 503) from None
        except TimeoutError:
            if cancel:
                log.warning("Worker %r did not answer %s within %g s; the event was cancelled in "
                            "the isolate", self.name, method, limit, extra={"worker": self.name})
            asyncio.ensure_future(self._check_alive(channel))
            raise IsolateError(f"Worker {self.name!r} did not answer {method} within "
                               f"{limit:g} s (request_timeout_ms); the request was abandoned",
                               504) from None
        if method == "fetch" and len(answer) > 3:  # [status, headers, None, stream id]
            return [answer[0], answer[1], self._streams.open(channel, answer[3])]
        return answer

    def _late_answer(self, channel: Channel, answer: Any) -> None:
        """A fetch answered after it was given up (504, or the platform stopping): a body
        it streams would otherwise run in the isolate until the flow-control window is full,
        and wait there for good."""
        if isinstance(answer, list) and len(answer) > 3 and isinstance(answer[3], int):
            log.info("Worker %r answered fetch after it was abandoned; its streamed body is cancelled",
                     self.name, extra={"worker": self.name})
            self._streams.cancel(channel, answer[3])

    async def fetch_streaming(self, wire: list[Any], body: Any) -> Any:
        """``fetch`` with a request body still arriving (an edgelet.request_body.StreamedBody):
        the call goes out with the body's id, then the body is pumped as it is read."""
        channel = await self._live_channel()
        self._body_ids += 1
        body_id = self._body_ids
        self._body_gates[body_id] = body.gate
        call = asyncio.ensure_future(self.invoke("fetch", [*wire, body_id]))
        body.start(channel, body_id)
        try:
            return await call
        finally:
            self._body_gates.pop(body_id, None)

    async def _check_alive(self, channel: Channel) -> None:
        """After a timeout: kill an isolate whose event loop is stuck (time.sleep, a lock)."""
        try:
            await asyncio.wait_for(channel.call("ping"), 2.0)
        except (TimeoutError, ChannelClosed):
            if self._channel is channel:
                log.warning("Worker %r isolate is unresponsive; restarting it", self.name,
                            extra={"worker": self.name})
                await self._kill()

    async def _handle(self, method: str, args: list[Any]) -> Any:
        return await self._on_call(method, args)

    def _notify(self, method: str, args: list[Any], channel: Channel) -> None:
        if method == "log":
            self._on_log(self.name, args[0], args[1])
        elif method == "ws" and self._on_websocket is not None:  # edgelet.websockets
            self._on_websocket(self.name, args)
        elif method == "stream.chunk":
            self._streams.on_chunk(channel, args[0], args[1])
        elif method == "stream.end":
            self._streams.on_last_word(channel, args[0], None)
        elif method == "stream.error":  # the Worker's body raised
            self._streams.on_last_word(channel, args[0], str(args[1]))
        elif method == "body.ack":  # the Worker took a chunk of a request body
            gate = self._body_gates.get(args[0])
            if gate is not None:
                gate.ack(args[1])
        elif method == "files":  # modules the Worker imported after its start (runtime.devtools)
            self.info.setdefault("files", []).extend(args[0])
        else:
            hook = self.notify_hooks.get(method)
            if hook is not None:
                hook(args)


def kill_descendants(pid: int) -> None:
    """SIGKILL every process a live isolate started, however it detached (``setsid``,
    double fork): a Worker's processes must not outlive its isolate.

    The isolate is a child subreaper (edgelet.runtime.isolate), so whatever its children
    leave behind is re-parented to it and still found here. Once an isolate has died on its
    own, its orphans go to the fork server, which kills them (edgelet.runtime.forkserver).
    """
    import psutil
    try:
        found = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in found:
        try:
            child.kill()
        except psutil.Error:
            pass


def describe_exit(code: int | None, isolate: Isolate, *, starting: bool = False) -> str:
    """Human words for an isolate's exit status (``starting``: while it loaded the script)."""
    if code is None:
        return "stopped"
    if code == EXIT_CPU_LIMIT and starting:
        from edgelet.runtime.isolate import STARTUP_CPU_S
        limit_ms = max(isolate.cpu_ms, int(STARTUP_CPU_S * 1000))
        return (f"exceeded its start-up CPU limit of {limit_ms} ms (a loop at the top level "
                f"of the script?)")
    if code == EXIT_CPU_LIMIT:
        return f"exceeded its CPU limit of {isolate.cpu_ms} ms (an endless loop?)"
    if code == EXIT_MEMORY:
        return f"exceeded its memory limit of {isolate.memory_mb} MiB"
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = _SIGNAL_HINTS.get(sig)
        return f"crashed with {name}" + (f" ({hint})" if hint else "")
    return f"exited with code {code}"
