"""The host <-> isolate channel: calls with a timeout, and calls answered without a task.

Both ends run in this process over a real socketpair, as the host and an isolate do.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
from typing import Any, AsyncIterator

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
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError):
        await caller.call("slow", timeout=0.2)
    waited = time.perf_counter() - t0
    assert 0.2 <= waited < 0.5  # never early; late by at most a sweep or so
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
