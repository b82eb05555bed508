"""The host's table of streamed response bodies (edgelet.response_stream) driven through
edgelet.supervisor.Isolate as the channel drives it: stream ids restart at 1 in every
isolate process (review 5, item 11), a reader that leaves cancels the body even before it
asked for a chunk (item 10), and an answer that comes after its call was given up is
handed to the caller's ``on_late`` (item 10, the 504 case)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from edgelet.channel import Channel
from edgelet.response_stream import StreamCutShort
from edgelet.supervisor import Isolate


class FakeChannel:
    """A process's channel: records what the host sends the isolate."""

    def __init__(self) -> None:
        self.closed = False
        self.sent: list[tuple[Any, ...]] = []

    async def serve(self) -> None:
        self.closed = True

    def notify(self, method: str, *args: Any) -> None:
        self.sent.append((method, *args))


def isolate() -> Isolate:
    return Isolate("w", {}, cpu_ms=0, memory_mb=128, request_timeout=5,
                   on_call=lambda m, a: None, on_log=lambda *a: None)


async def take(stream: Any, timeout: float = 2.0) -> list[bytes]:
    return [chunk async for chunk in _bounded(stream, timeout)]


async def _bounded(stream: Any, timeout: float) -> Any:
    while True:
        try:
            yield await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            return


def test_a_late_reader_of_a_dead_process_leaves_the_next_process_stream_alone() -> None:
    async def main() -> None:
        iso = isolate()
        old: Any = FakeChannel()
        iso._channel = old
        old_stream = iso._streams.open(old, 1)
        iso._notify("stream.chunk", [1, b"old-1"], old)
        iso._notify("stream.chunk", [1, b"old-2"], old)
        assert await old_stream.__anext__() == b"old-1"  # its client is slow: the reader waits
        await iso._serve(old, None)  # the old process dies (or is reloaded)
        new: Any = FakeChannel()
        iso._channel = new
        new_stream = iso._streams.open(new, 1)  # the new process's first body: id 1 again
        iso._notify("stream.chunk", [1, b"new-1"], new)
        assert await new_stream.__anext__() == b"new-1"
        # the old reader goes on: what came, then the cut (its process died mid-body)
        assert await old_stream.__anext__() == b"old-2"
        with pytest.raises(StreamCutShort, match="Worker 'w'.*while streaming the response body"):
            await old_stream.__anext__()
        iso._notify("stream.chunk", [1, b"new-2"], new)
        iso._notify("stream.end", [1], new)
        assert await take(new_stream) == [b"new-2"]
        assert len(iso._streams) == 0

    asyncio.run(main())


def test_a_process_that_dies_ends_only_its_own_streams() -> None:
    async def main() -> None:
        iso = isolate()
        old: Any = FakeChannel()
        new: Any = FakeChannel()
        old_stream = iso._streams.open(old, 1)
        new_stream = iso._streams.open(new, 1)
        iso._notify("stream.chunk", [1, b"a"], new)
        iso._channel = new
        await iso._serve(old, None)
        with pytest.raises(StreamCutShort):
            await take(old_stream)
        iso._notify("stream.chunk", [1, b"b"], new)
        iso._notify("stream.end", [1], new)
        assert await take(new_stream) == [b"a", b"b"]  # whole, with its end

    asyncio.run(main())


def test_a_body_that_raised_is_cut_short_not_ended() -> None:
    async def main() -> None:
        iso = isolate()
        ch: Any = FakeChannel()
        stream = iso._streams.open(ch, 3)
        iso._notify("stream.chunk", [3, b"partial"], ch)
        iso._notify("stream.error", [3, "RuntimeError: broke"], ch)
        assert await stream.__anext__() == b"partial"
        with pytest.raises(StreamCutShort, match="Worker 'w': its response body raised RuntimeError: broke"):
            await stream.__anext__()
        assert ch.sent == [("stream.ack", 3, len(b"partial"))]

    asyncio.run(main())


def test_closing_a_stream_never_read_cancels_it_and_drops_what_still_comes() -> None:
    async def main() -> None:
        iso = isolate()
        ch: Any = FakeChannel()
        iso._notify("stream.chunk", [5, b"early"], ch)  # chunks come right behind the answer
        stream = iso._streams.open(ch, 5)
        await stream.aclose()  # e.g. the client left during its upload: nothing was read
        assert ch.sent == [("stream.cancel", 5)]
        iso._notify("stream.chunk", [5, b"x" * 1000], ch)  # in flight when the cancel left
        assert len(iso._streams) == 1  # held only until the isolate's last word
        iso._notify("stream.end", [5], ch)
        assert len(iso._streams) == 0

    asyncio.run(main())


def test_an_answer_after_the_timeout_reaches_on_late() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        ra, wa = await asyncio.open_connection(sock=a)
        rb, wb = await asyncio.open_connection(sock=b)

        async def slow(method: str, args: list[Any]) -> Any:
            await asyncio.sleep(0.2)
            return [200, [], None, 7]

        host = Channel(ra, wa)
        worker = Channel(rb, wb, slow)
        serving = [asyncio.ensure_future(host.serve()), asyncio.ensure_future(worker.serve())]
        late: list[Any] = []
        with pytest.raises(TimeoutError):
            await host.call("fetch", timeout=0.05, on_late=lambda ch, answer: late.append((ch, answer)))
        await asyncio.sleep(0.4)
        assert late == [(host, [200, [], None, 7])]
        host.close()
        worker.close()
        for task in serving:
            task.cancel()

    asyncio.run(main())
