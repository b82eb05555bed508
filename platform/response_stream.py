"""The host half of streamed response bodies: what a Worker's isolate streams, per body.

The wire (see edgelet.runtime.isolate.Runtime._start_stream): the isolate answers ``fetch``
with ``[status, headers, None, stream id]``, then sends ``stream.chunk(id, bytes)`` and
exactly one last word, ``stream.end(id)`` (the whole body) or ``stream.error(id, text)``
(the Worker's body raised). The host sends ``stream.ack(id, n)`` once a chunk is written
to the client (edgelet.flow) and ``stream.cancel(id)`` when nobody will read the body any
more; the isolate then cancels the Worker's generator and still sends its last word.

Why a table keyed by channel: stream ids restart at 1 in every isolate process, while one
edgelet.supervisor.Isolate serves a Worker's successive processes, so an id alone could
name the stream of a dead process and of its successor at once (a slow client's reader
finishing late would end the new process's stream 1).

Why an error marker and not just an end: a body cut short (the Worker's generator raised,
its isolate died) must not reach the client as a complete body; the reader raises
:class:`StreamCutShort` and edgelet.server closes the connection without the last chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgelet.channel import Channel


class StreamCutShort(Exception):
    """A streamed response body ended before its end (the message says why, naming the
    Worker): the client must see its connection end without the body's last chunk."""


#: a stream whose reader gave up: its chunks are dropped until the isolate's last word
_CANCELLED: Any = None
_MISSING: Any = object()


class ResponseStream:
    """The chunks of one streamed response body, an async iterator of bytes.

    Not an async generator on purpose: ``aclose()`` on a generator that never started
    runs none of its code, and a body nobody will read (the client left during the
    upload, an answer that came after its 504) must still be cancelled in the isolate.
    """

    __slots__ = ("_table", "channel", "stream_id", "queue", "ended", "_done", "_unacked")

    def __init__(self, table: StreamTable, channel: Channel, stream_id: int) -> None:
        self._table = table
        self.channel = channel
        self.stream_id = stream_id
        #: chunks; then None (the end) or a StreamCutShort
        self.queue: asyncio.Queue[bytes | StreamCutShort | None] = asyncio.Queue()
        #: the isolate's last word (or the channel's end) is in the queue
        self.ended = False
        #: the reader is done with it (took the last word, or closed it)
        self._done = False
        #: bytes of the chunk handed out last, acknowledged when the reader asks again
        self._unacked = 0

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._unacked:  # the reader is back: the last chunk is written, the Worker may go on
            size, self._unacked = self._unacked, 0
            if not self.channel.closed:
                self.channel.notify("stream.ack", self.stream_id, size)
        if self._done:
            raise StopAsyncIteration
        item = await self.queue.get()
        if isinstance(item, bytes):
            self._unacked = len(item)
            return item
        self._done = True
        self._table._forget(self)
        if item is None:
            raise StopAsyncIteration
        raise item

    async def aclose(self) -> None:
        """The reader is done: a body still coming is cancelled in the isolate."""
        if self._done:
            return
        self._done = True
        self._table._abandon(self)

    def _put(self, item: bytes | StreamCutShort | None) -> None:
        if item is None or isinstance(item, StreamCutShort):
            self.ended = True
        self.queue.put_nowait(item)


class StreamTable:
    """The streamed response bodies of one Worker's isolate processes, by (channel, id)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._by_channel: dict[Channel, dict[int, ResponseStream | None]] = {}

    def __len__(self) -> int:
        """Bodies (and cancelled ones awaiting their last word) held now, for tests."""
        return sum(len(streams) for streams in self._by_channel.values())

    # -- the reader's side ---------------------------------------------------------------
    def open(self, channel: Channel, stream_id: int) -> ResponseStream:
        """The body ``stream_id`` that ``channel``'s process answered with (its first chunks
        may have arrived already: they come right behind the answer)."""
        if channel.closed and stream_id not in self._by_channel.get(channel, {}):
            # its process died right after answering, before a chunk came
            stream = ResponseStream(self, channel, stream_id)
            stream._put(StreamCutShort(f"Worker {self.worker!r}: its isolate ended before the "
                                       f"response body was sent"))
            return stream
        return self._entry(channel, stream_id)

    def cancel(self, channel: Channel, stream_id: int) -> None:
        """Nobody will read body ``stream_id`` (its answer came after its call was given up)."""
        streams = self._by_channel.get(channel)
        stream = _MISSING if streams is None else streams.get(stream_id, _MISSING)
        if stream is _MISSING:
            stream = self._entry(channel, stream_id)
        if stream is not _CANCELLED:
            stream._done = True
            self._abandon(stream)

    def _forget(self, stream: ResponseStream) -> None:
        """The reader took the last word: the entry goes."""
        streams = self._by_channel.get(stream.channel)
        if streams is not None and streams.get(stream.stream_id) is stream:
            del streams[stream.stream_id]
            if not streams:
                del self._by_channel[stream.channel]

    def _abandon(self, stream: ResponseStream) -> None:
        """The reader left before the last word: ask the isolate to stop, drop what comes."""
        if stream.ended or stream.channel.closed:
            self._forget(stream)
            return
        streams = self._by_channel.get(stream.channel)
        if streams is not None and streams.get(stream.stream_id) is stream:
            streams[stream.stream_id] = _CANCELLED  # until the isolate's last word
        stream.channel.notify("stream.cancel", stream.stream_id)

    # -- the isolate's side --------------------------------------------------------------
    def _entry(self, channel: Channel, stream_id: int) -> Any:
        streams = self._by_channel.get(channel)
        if streams is None:
            streams = self._by_channel[channel] = {}
        stream = streams.get(stream_id, _MISSING)
        if stream is _MISSING:
            stream = streams[stream_id] = ResponseStream(self, channel, stream_id)
        return stream

    def on_chunk(self, channel: Channel, stream_id: int, chunk: bytes) -> None:
        if channel.closed:  # read before the close, dispatched after it: end_channel decides
            return
        stream = self._entry(channel, stream_id)
        if stream is not _CANCELLED:
            stream._put(chunk)

    def on_last_word(self, channel: Channel, stream_id: int, error: str | None) -> None:
        """``stream.end`` (``error`` None) or ``stream.error``."""
        if channel.closed:
            return
        stream = self._entry(channel, stream_id)
        if stream is _CANCELLED:
            streams = self._by_channel[channel]
            del streams[stream_id]
            if not streams:
                del self._by_channel[channel]
            return
        stream._put(None if error is None else StreamCutShort(
            f"Worker {self.worker!r}: its response body raised {error}"))

    def has_streams(self, channel: Channel) -> bool:
        return channel in self._by_channel

    def end_channel(self, channel: Channel, reason: str) -> None:
        """``channel``'s process is gone: each of its bodies still coming is cut short
        (``reason`` says why, naming the Worker); one that ended whole stays whole for its
        reader, and the other processes' bodies go on."""
        streams = self._by_channel.get(channel)
        if streams is None:
            return
        for stream_id, stream in list(streams.items()):
            if stream is None:  # _CANCELLED
                del streams[stream_id]
            elif not stream.ended:
                stream._put(StreamCutShort(reason))
        if not streams:
            del self._by_channel[channel]
