"""The host <-> isolate channel: symmetric RPC of msgpack messages over a socket.

Why msgpack: it is data only (decoding never runs code, unlike pickle, so the host can
read what an isolate sends without trusting it), it carries ``bytes`` as bytes (request
bodies need no base64 or JSON), and it is fast for the small messages that dominate.

Messages are arrays:
    [REQUEST, id, method, args]   answered by
    [RESULT, id, value]  or  [ERROR, id, {"type", "message", "traceback"}]
    [NOTIFY, method, args]        fire and forget (log lines)
    [NOTIFY, "channel.cancel", [id]]   the caller gave up on call ``id`` (``call(cancel=True)``):
                                       the task answering it is cancelled
Either side may call the other; every request runs in its own task so a slow handler
never blocks the reader, except those a ``sync_handler`` answers at once or with a
:class:`Later` settled at the end of the read (see there).

Writes are joined: what one turn of the event loop sends leaves in one ``write`` at the end
of that turn (see Channel._write). Why: a WebSocket message costs a call, a notification per
``send`` and an answer; with many sockets busy, one system call and one wake-up of the
other process per turn instead of one per message was most of the gain of issue 16's
benchmark. Log lines go at once (with what is queued before them): a Worker that prints
and then blocks its loop must still have its line shown.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

REQUEST, RESULT, ERROR, NOTIFY = 0, 1, 2, 3
#: the notification that cancels the task answering a call the caller gave up on
CANCEL = "channel.cancel"
#: how long a call given up on keeps its ``on_late`` waiting for an answer (seconds), and
#: how many may wait at once: a call the other side never answers must not be kept forever
LATE_TTL_S = 600.0
MAX_LATE = 4096
MAX_MESSAGE = 512 * 1024 * 1024
#: how often calls made with a timeout are checked (see Channel._sweep)
_SWEEP_S = 0.025
#: bytes queued past which they are written at once rather than at the end of the iteration
_FLUSH_AT = 64 * 1024

log = logging.getLogger("edgelet.channel")

Handler = Callable[[str, list[Any]], Awaitable[Any]]
NotifyHandler = Callable[[str, list[Any]], None]
SyncHandler = Callable[[str, list[Any]], Any]
LateHandler = Callable[["Channel", Any], None]
#: what a sync handler returns for a call it leaves to the (async) handler
NOT_NOW: Any = object()


class Later:
    """What a sync handler returns for an answer that waits for ``settle`` (a commit).

    Why: a call whose answer waits only for a commit it shares with the other calls of
    the same read (a workflow's step record) needs no task, no future and no extra loop
    turn: the handler queues its write and returns a Later; once the whole read is
    dispatched, the channel runs each distinct ``settle`` once, which answers the calls
    through :meth:`resolve` or :meth:`fail`, and all the answers of the read leave in one
    write. A Later answered after its read (by a settle that ran elsewhere first) is
    written at once.
    """

    __slots__ = ("settle", "_channel", "_call_id")

    def __init__(self, settle: Callable[[], None]) -> None:
        self.settle = settle
        self._channel: Channel | None = None
        self._call_id = 0

    def resolve(self, value: Any) -> None:
        channel = self._channel
        if channel is not None:
            channel._deliver(channel._packer.pack([RESULT, self._call_id, value]))

    def fail(self, exc: BaseException) -> None:
        channel = self._channel
        if channel is not None:
            channel._deliver(channel._packer.pack([ERROR, self._call_id, error_payload(exc)]))


def well_formed(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (also inside lists, tuples and
    dicts) replaced by U+FFFD, and a surrogate pair joined into its character: what a JS
    string becomes as UTF-8 on Cloudflare (workerd's WebSocket text, TextEncoder).

    Why: msgpack, like UTF-8, cannot carry a lone surrogate, and a str holding one (a bad
    ``\\ud800`` escape in JSON, bytes decoded with ``surrogateescape``) is valid Python.
    Only called after encoding failed: the common path pays nothing."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, (list, tuple)):
        return [well_formed(v) for v in value]
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    return value


class RemoteError(Exception):
    """An exception raised on the other side of the channel, carried as data."""

    def __init__(self, type_name: str, message: str, traceback: str | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.data = data or {}


class ChannelClosed(ConnectionError):
    """The other side went away (exited, crashed, or closed the socket)."""


def error_payload(exc: BaseException, traceback: str | None = None) -> dict[str, Any]:
    """Describe an exception as data; ``data`` carries structured extras (error codes)."""
    if isinstance(exc, RemoteError):
        return {"type": exc.type_name, "message": exc.message,
                "traceback": traceback or exc.traceback, "data": exc.data}
    # an exception may carry the traceback its owner wants shown (edgelet.runtime.isolate
    # trims a Worker's load failure to the Worker's own frames)
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": getattr(exc, "edgelet_traceback", None) or traceback,
            "data": getattr(exc, "wire_data", None) or {}}


class Channel:
    """One end of the channel. ``serve()`` must run for calls to complete."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler | None = None, on_notify: NotifyHandler | None = None,
                 *, include_tracebacks: bool = True) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._on_notify = on_notify
        self._pending: dict[int, asyncio.Future[Any]] = {}
        #: calls this side gave up on (timeout, cancelled) whose answer must still be seen:
        #: call id -> (on_late(channel, answer), loop.time() past which it is dropped); in
        #: the order given up, so the oldest are first (see _remember_late)
        self._late: dict[int, tuple[LateHandler, float]] = {}
        #: the tasks answering the other side's calls, by call id (for CANCEL)
        self._answering: dict[int, asyncio.Task[Any]] = {}
        #: when each call made with a timeout must have been answered (loop.time())
        self._deadlines: dict[int, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._ids = itertools.count(1)
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        self._closed: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._include_tracebacks = include_tracebacks
        #: answers calls synchronously, in the reader's loop, or returns NOT_NOW.
        #: Why: for a handler that never awaits (a Wasm module's fetch), a task per call
        #: and its coroutine chain cost more than the handler, and the answers to all the
        #: calls of one read leave in one write instead of one send() each.
        self.sync_handler: SyncHandler | None = None
        #: messages packed in this event-loop iteration, written together at its end
        self._out: list[bytes] = []
        self._out_size = 0
        #: the loop the channel runs in (asking asyncio each time costs a getpid() call)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the settle functions of the Laters of the read being dispatched (run once each)
        self._settles: list[Callable[[], None]] = []
        #: loop.time() since which deadlines are held (the other side sits in a debugger)
        self._held_since: float | None = None

    def hold_deadlines(self) -> None:
        """Stop the clock of every call (a Worker waits at a pdb prompt: not a timeout)."""
        if self._held_since is None:
            self._held_since = asyncio.get_running_loop().time()

    def release_deadlines(self) -> None:
        """Restart the clock; each deadline moves by the time it was held."""
        if self._held_since is None:
            return
        held = asyncio.get_running_loop().time() - self._held_since
        self._held_since = None
        for call_id in self._deadlines:
            self._deadlines[call_id] += held

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def pending(self) -> int:
        """Calls this side made that have not been answered yet."""
        return len(self._pending)

    async def call(self, method: str, *args: Any, timeout: float | None = None,
                   on_late: LateHandler | None = None, cancel: bool = False) -> Any:
        """Call ``method`` on the other side; TimeoutError if no answer within ``timeout``
        seconds (the answer, should it come later, is dropped).

        ``on_late(channel, answer)`` runs for an answer that arrives after this side gave
        up (the timeout, or the caller cancelled): an answer that holds something open on
        the other side (a streamed response body) must be let go there too. It waits for
        that answer at most LATE_TTL_S (and MAX_LATE calls at once).

        ``cancel``: when this side gives up, the other side's task answering the call is
        cancelled (CANCEL), so an event nobody waits for does not run on for good."""
        if self._closed is not None:
            raise ChannelClosed(str(self._closed))
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[call_id] = future
        if timeout is not None:
            self._deadlines[call_id] = loop.time() + timeout
            if self._sweeper is None:
                self._sweeper = loop.call_later(_SWEEP_S, self._sweep)
        try:
            self._write(self._packer.pack([REQUEST, call_id, method, list(args)]))
            return await future
        except (TimeoutError, asyncio.CancelledError):
            if self._closed is None:
                if on_late is not None:
                    self._remember_late(call_id, on_late)
                if cancel:
                    self.notify(CANCEL, call_id)
            raise
        finally:
            self._pending.pop(call_id, None)
            self._deadlines.pop(call_id, None)

    def _remember_late(self, call_id: int, on_late: LateHandler) -> None:
        """Keep ``on_late`` for call ``call_id``, dropping those past their time or beyond
        MAX_LATE (oldest first): an answer that never comes must not hold an entry forever."""
        late = self._late
        now = asyncio.get_running_loop().time()
        while late:
            oldest = next(iter(late))
            if late[oldest][1] > now and len(late) < MAX_LATE:
                break
            del late[oldest]
        late[call_id] = (on_late, now + LATE_TTL_S)

    @property
    def late(self) -> int:
        """Calls given up on whose late answer is still watched for (bounded)."""
        return len(self._late)

    def _sweep(self) -> None:
        """Fail the calls whose time is up.

        Why a sweep rather than a timer per call (asyncio.timeout): under load a timer
        created and cancelled per request was an eighth of the host's CPU per request;
        the calls in flight are few, and looking at them every _SWEEP_S costs nothing.
        A call times out at its deadline or up to _SWEEP_S later, never earlier."""
        self._sweeper = None
        if not self._deadlines or self._closed is not None:
            return
        loop = asyncio.get_running_loop()
        if self._held_since is not None:
            self._sweeper = loop.call_later(_SWEEP_S, self._sweep)
            return
        now = loop.time()
        for call_id, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[call_id]
                future = self._pending.get(call_id)
                if future is not None and not future.done():
                    future.set_exception(TimeoutError("no answer within the call's timeout"))
        if self._deadlines:
            self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    def notify(self, method: str, *args: Any) -> None:
        """Send a notification now, after whatever this side queued before it.

        Why at once: a log line must reach the host even when the isolate dies right after
        printing it (a segfault, os._exit), and a stream's chunks should not wait."""
        if self._closed is None:
            try:
                packed = self._packer.pack([NOTIFY, method, list(args)])
            except UnicodeEncodeError:  # a lone surrogate: msgpack carries valid UTF-8 only.
                # A notification is fire and forget (a WebSocket's send, a stream's chunk):
                # raising here would break what sent it, so it goes as a JS string would.
                # A call still raises: the binding it serves must refuse bad input loudly.
                packed = self._packer.pack([NOTIFY, method, well_formed(list(args))])
            self._write(packed)
            self.flush()

    # -- writing ------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Queue ``data``; everything queued in one event-loop iteration leaves in one write.

        Why: under load many calls (and their answers) are made in the same iteration, and a
        send() system call per message was an eighth of each side's CPU per request (py-spy
        of hello-world under wrk). Order is kept: every message goes through this queue."""
        out = self._out
        if not out:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)
        out.append(data)
        self._out_size += len(data)
        if self._out_size >= _FLUSH_AT:
            self.flush()  # a large body goes out now, without joining it to the rest

    def flush(self) -> None:
        """Write what is queued (called at the end of the iteration, or before a close)."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        if self._closed is None:
            self._writer.write(data)

    async def serve(self) -> None:
        """Read messages until the other side closes; then fail every pending call."""
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE,
                                    strict_map_key=False)
        reason: BaseException = ChannelClosed("the other side closed the channel")
        try:
            while True:
                data = await self._reader.read(1 << 18)
                if not data:
                    break
                unpacker.feed(data)
                for message in unpacker:
                    self._dispatch(message)
                while self._settles:
                    settles, self._settles = self._settles, []
                    for settle in settles:
                        try:
                            settle()
                        except Exception:  # its Laters are answered by whoever settles next
                            log.exception("settling the calls of a read failed")
        except (ConnectionError, OSError) as exc:
            reason = ChannelClosed(f"channel broken: {exc}")
        except Exception as exc:  # malformed bytes: treat as a dead peer, never crash the host
            reason = ChannelClosed(f"unreadable message on channel: {exc!r}")
        finally:
            self._close(reason)

    def _dispatch(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == RESULT or kind == ERROR:
            future = self._pending.get(message[1])
            if future is None or future.done():
                if self._late:
                    self._answered_late(kind, message)
                return
            if kind == RESULT:
                future.set_result(message[2])
            else:
                err = message[2] or {}
                future.set_exception(RemoteError(str(err.get("type", "Error")),
                                                 str(err.get("message", "")),
                                                 err.get("traceback"), err.get("data")))
        elif kind == REQUEST:
            if self.sync_handler is not None and self._answer_now(message[1], message[2], message[3]):
                return
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            call_id = message[1]
            task = loop.create_task(self._answer(call_id, message[2], message[3]))
            self._tasks.add(task)
            self._answering[call_id] = task
            task.add_done_callback(self._tasks.discard)
        elif kind == NOTIFY and message[1] == CANCEL:
            args = message[2]
            answering = self._answering.get(args[0]) if args else None
            if answering is not None and not answering.done():
                log.info("call %s was given up by the other side; its task is cancelled", args[0])
                answering.cancel()
        elif kind == NOTIFY:
            if self._on_notify is not None:
                try:
                    self._on_notify(message[1], message[2])
                except Exception:  # a bad log line must not break the channel
                    log.exception("notification %r failed", message[1])

    def _answered_late(self, kind: int, message: list[Any]) -> None:
        """The answer to a call given up on: its ``on_late`` sees a result (not an error)."""
        entry = self._late.pop(message[1], None)
        on_late = entry[0] if entry is not None else None
        if on_late is not None and kind == RESULT:
            try:
                on_late(self, message[2])
            except Exception:
                log.exception("handling a late answer failed")

    def _answer_now(self, call_id: int, method: str, args: list[Any]) -> bool:
        """Answer through the sync handler; False if it left the call to the handler."""
        assert self.sync_handler is not None
        try:
            result = self.sync_handler(method, args)
            if result is NOT_NOW:
                return False
            if isinstance(result, Later):
                result._channel, result._call_id = self, call_id
                if result.settle not in self._settles:
                    self._settles.append(result.settle)
                return True
            packed = self._packer.pack([RESULT, call_id, result])
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
            packed = self._error(call_id, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        if self._closed is None:
            self._write(packed)
        return True

    def _deliver(self, packed: bytes) -> None:
        """A Later's answer: it joins this loop turn's write, with the read's other answers."""
        if self._closed is None:
            self._write(packed)

    async def _answer(self, call_id: int, method: str, args: list[Any]) -> None:
        try:
            return await self._answer_call(call_id, method, args)
        finally:
            self._answering.pop(call_id, None)

    async def _answer_call(self, call_id: int, method: str, args: list[Any]) -> None:
        try:
            if self._handler is None:
                raise LookupError(f"no handler for {method!r}")
            result = await self._handler(method, args)
            packed = self._packer.pack([RESULT, call_id, result])
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
            if isinstance(exc, asyncio.CancelledError) and self._closed is not None:
                return
            packed = self._error(call_id, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        if self._closed is None:
            self._write(packed)

    def _error(self, call_id: int, exc: BaseException) -> bytes:
        """The ERROR message for ``exc`` (called while it is being handled)."""
        import traceback as tb
        text = tb.format_exc() if self._include_tracebacks else None
        try:
            return self._packer.pack([ERROR, call_id, error_payload(exc, text)])
        except Exception:
            return self._packer.pack([ERROR, call_id, {"type": type(exc).__name__,
                                                       "message": repr(exc)}])

    def _close(self, reason: BaseException) -> None:
        if self._closed is not None:
            return
        try:
            self.flush()  # what this side said before closing still goes out
        except Exception:
            pass
        self._closed = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(reason if isinstance(reason, ChannelClosed)
                                     else ChannelClosed(str(reason)))
        self._pending.clear()
        self._late.clear()
        self._answering.clear()
        self._deadlines.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        try:
            self._writer.close()
        except Exception:
            pass

    def close(self) -> None:
        self._close(ChannelClosed("channel closed"))
