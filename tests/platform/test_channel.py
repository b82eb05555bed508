"""The host <-> isolate channel: calls with a timeout, and calls answered without a task.

Both ends run in this process over a real socketpair, as the host and an isolate do.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from edgelet.channel import NOT_NOW, Channel, ChannelClosed, RemoteError


async def _pair(handler: Any, sync_handler: Any = None) -> tuple[Channel, Channel, list[asyncio.Task[Any]]]:
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    caller = Channel(ra, wa)
    callee = Channel(rb, wb, handler)
    callee.sync_handler = sync_handler
    tasks = [asyncio.ensure_future(caller.serve()), asyncio.ensure_future(callee.serve())]
    return caller, callee, tasks


@pytest.fixture
async def channels() -> AsyncIterator[Any]:
    made: list[tuple[Channel, Channel, list[asyncio.Task[Any]]]] = []

    async def make(handler: Any, sync_handler: Any = None) -> tuple[Channel, Channel]:
        caller, callee, tasks = await _pair(handler, sync_handler)
        made.append((caller, callee, tasks))
        return caller, callee

    yield make
    for caller, callee, tasks in made:
        caller.close()
        callee.close()
        for task in tasks:
            task.cancel()


async def test_a_call_times_out_at_its_deadline_and_a_late_answer_is_dropped(channels: Any) -> None:
    release = asyncio.Event()

    async def handler(method: str, args: list[Any]) -> Any:
        if method == "slow":
            await release.wait()
        return method

    caller, _ = await channels(handler)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    woke: list[float] = []
    loop.call_later(0.2, lambda: woke.append(loop.time()))  # how late this loop runs a timer now
    with pytest.raises(TimeoutError):
        await caller.call("slow", timeout=0.2)
    waited = loop.time() - t0
    assert waited >= 0.2  # never early
    # late by at most a sweep or so beyond what a plain timer on the same loop was (a loaded
    # machine delays both alike)
    assert woke and waited - (woke[0] - t0) < 0.3, (waited, woke[0] - t0)
    release.set()  # the slow answer arrives now, for a call nobody waits on
    assert await caller.call("fast", timeout=5) == "fast"
    assert await caller.call("no-timeout") == "no-timeout"
    assert caller.pending == 0


async def test_calls_without_a_timeout_wait_as_long_as_it_takes(channels: Any) -> None:
    async def handler(method: str, args: list[Any]) -> Any:
        await asyncio.sleep(0.1)
        return args[0] * 2

    caller, _ = await channels(handler)
    slow, quick = await asyncio.gather(caller.call("x", 21), caller.call("y", 1, timeout=0.05),
                                       return_exceptions=True)
    assert slow == 42 and isinstance(quick, TimeoutError)


async def test_a_sync_handler_answers_without_the_async_handler_or_leaves_it_the_call(channels: Any) -> None:
    seen: list[str] = []

    async def handler(method: str, args: list[Any]) -> Any:
        seen.append(f"async {method}")
        return "async"

    def sync_handler(method: str, args: list[Any]) -> Any:
        if method == "boom":
            raise ValueError("bad input: boom")
        return "sync" if method == "now" else NOT_NOW

    caller, _ = await channels(handler, sync_handler)
    answers = await asyncio.gather(*(caller.call("now") for _ in range(50)), caller.call("later"))
    assert answers == ["sync"] * 50 + ["async"] and seen == ["async later"]
    with pytest.raises(RemoteError) as info:
        await caller.call("boom")
    assert info.value.type_name == "ValueError" and info.value.message == "bad input: boom"


class _RecordingWriter:
    """A StreamWriter stand-in that keeps each write() it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass


async def test_the_messages_of_one_loop_iteration_leave_in_one_write_in_order(channels: Any) -> None:
    async def handler(method: str, args: list[Any]) -> Any:
        return args[0]

    caller, _ = await channels(handler)
    real = caller._writer
    sent: list[int] = []

    class Counting:
        def write(self, data: bytes) -> None:
            sent.append(len(data))
            real.write(data)

        def close(self) -> None:
            real.close()

    caller._writer = Counting()
    answers = await asyncio.gather(*(caller.call("echo", i) for i in range(50)))
    assert answers == list(range(50))  # each answer reached its own call
    assert len(sent) == 1  # 50 requests, one write (one send() system call)


async def test_a_notification_leaves_at_once_behind_what_was_queued_before_it() -> None:
    a, b = socket.socketpair()
    try:
        reader, _ = await asyncio.open_connection(sock=a)
        writer = _RecordingWriter()
        channel = Channel(reader, writer)  # type: ignore[arg-type]
        call = asyncio.ensure_future(channel.call("first", 1))
        await asyncio.sleep(0)  # the call is packed and queued, not written
        assert writer.writes == []
        channel.notify("log", "info", "last words before a crash")
        # written before the loop turns again: a print just before os._exit still arrives
        assert len(writer.writes) == 1
        messages = list(msgpack.Unpacker(io.BytesIO(writer.writes[0]), raw=False))
        assert [m[0] for m in messages] == [0, 3]  # the call first, then the notification
        assert messages[1][2] == ["info", "last words before a crash"]
        channel.close()
        with pytest.raises(ChannelClosed):
            await call
    finally:
        a.close()
        b.close()


async def test_laters_of_one_read_are_settled_once_and_answered_together(channels: Any) -> None:
    """A sync handler's Later: settled at the end of its read (once for all the calls that share
    it), then each answer or error reaches its caller; the async handler never runs."""
    from edgelet.channel import Later

    settles: list[list[str]] = []
    waiting: list[tuple[Later, str]] = []

    def settle() -> None:  # what a group commit does: write all, then answer each
        settles.append([name for _, name in waiting])
        for later, name in waiting:
            if name == "bad":
                later.fail(PermissionError("record 'bad' refused"))
            else:
                later.resolve(f"stored {name}")
        waiting.clear()

    def sync_handler(method: str, args: list[Any]) -> Any:
        later = Later(settle)
        waiting.append((later, args[0]))
        return later

    async def handler(method: str, args: list[Any]) -> Any:
        raise AssertionError("the async handler must not run")

    caller, _ = await channels(handler, sync_handler)
    results = await asyncio.gather(*(caller.call("record", n) for n in ("a", "b", "bad", "c")),
                                   return_exceptions=True)
    assert results[:2] == ["stored a", "stored b"] and results[3] == "stored c"
    assert isinstance(results[2], RemoteError) and results[2].type_name == "PermissionError"
    assert "record 'bad' refused" in results[2].message
    assert sorted(n for batch in settles for n in batch) == ["a", "b", "bad", "c"]


async def test_a_later_answered_after_its_read_is_written_at_once(channels: Any) -> None:
    """A Later whose settle ran elsewhere first (the group commit's own call_soon) still
    reaches its caller."""
    from edgelet.channel import Later

    pending: list[Later] = []

    def sync_handler(method: str, args: list[Any]) -> Any:
        later = Later(lambda: None)  # this settle answers nothing
        pending.append(later)
        asyncio.get_running_loop().call_later(0.01, lambda: pending.pop().resolve("later"))
        return later

    caller, _ = await channels(None, sync_handler)
    assert await caller.call("x", timeout=5) == "later"


async def test_a_call_given_up_with_cancel_cancels_the_task_answering_it(channels: Any) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(method: str, args: list[Any]) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return method

    caller, callee = await channels(handler)
    late: list[Any] = []
    with pytest.raises(TimeoutError):
        await caller.call("hang", timeout=0.1, cancel=True, on_late=lambda ch, a: late.append(a))
    await asyncio.wait_for(cancelled.wait(), 2)   # the other side stopped working on it
    for _ in range(100):                          # and its answer (an error) ended the wait for it
        if caller.late == 0:
            break
        await asyncio.sleep(0.01)
    assert caller.late == 0 and late == [] and not callee._answering
    # without cancel, the other side's task runs on (as before)
    started.clear()
    cancelled.clear()
    with pytest.raises(TimeoutError):
        await caller.call("hang", timeout=0.1)
    await asyncio.sleep(0.1)
    assert started.is_set() and not cancelled.is_set() and len(callee._answering) == 1


async def test_calls_never_answered_do_not_pile_up_waiting_for_a_late_answer(
        channels: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgelet.channel as channel_module
    monkeypatch.setattr(channel_module, "MAX_LATE", 8)
    monkeypatch.setattr(channel_module, "LATE_TTL_S", 0.3)

    async def handler(method: str, args: list[Any]) -> Any:
        await asyncio.sleep(3600)                 # never answers

    caller, _ = await channels(handler)

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await caller.call("hang", timeout=0.03, on_late=lambda ch, a: None)

    await asyncio.gather(*(give_up() for _ in range(50)))
    assert caller.late <= 8                        # the oldest were dropped
    await asyncio.sleep(0.35)
    await give_up()
    assert caller.late == 1                        # those past their time too


async def test_a_lone_surrogate_in_a_message_arrives_as_u_fffd_and_the_channel_carries_on(
        channels: Any) -> None:
    got: list[Any] = []

    async def handler(method: str, args: list[Any]) -> Any:
        return args

    caller, callee = await channels(handler)
    callee._on_notify = lambda method, args: got.append(args)
    caller.notify("ws", "send", "t", "a\ud800b", {"k\udfff": ["\ud83d\ude00"]})
    assert await caller.call("echo", "fine") == ["fine"] and not caller.closed
    assert got == [["send", "t", "a\ufffdb", {"k\ufffd": ["\U0001f600"]}]]
    with pytest.raises(UnicodeEncodeError):       # a call refuses it: its caller must know
        await caller.call("echo", "x\udc80")
    assert await caller.call("echo", "still fine") == ["still fine"] and not caller.closed
