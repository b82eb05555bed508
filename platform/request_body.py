"""A large request body sent to the Worker as it arrives (the host half).

Why: reading a whole upload before calling the Worker holds all of it in the host, and
then again in the isolate; an ASGI app's ``receive()`` or a ``getReader()`` loop could not
start until the last byte. The HTTP front reads the first part of a body; when more is
coming (and the Worker takes streamed bodies) it hands the rest over as a
:class:`StreamedBody`, which :meth:`edgelet.supervisor.Isolate.fetch_streaming` pumps to the
isolate as ``body.chunk`` notifications under credit-based flow control
(edgelet.flow): the host reads from the client no faster than the Worker reads.

The guarantees of a whole read are kept: a body over the size limit ends with
``body.error`` in the isolate and the client gets 413 whatever the Worker answers; a
client that goes away mid-body makes the Worker's read raise, so a Worker that reads the
whole body never acts on half of it (see edgelet.runtime.request_body).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edgelet.flow import CreditGate

log = logging.getLogger("edgelet.http")


class StreamedBody:
    """The rest of a request body, read from the client's ASGI ``receive`` on demand."""

    def __init__(self, first: bytes, receive: Any, *, max_body: int, declared: int | None,
                 what: str) -> None:
        self._first = first
        self._receive = receive
        self.max_body = max_body
        self.declared = declared
        #: "METHOD /path", for the log
        self.what = what
        self.size = 0
        #: None while reading or after a whole body; "gone" or "too_large" when it failed
        self.failure: str | None = None
        self.gate = CreditGate()
        self._task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()

    def start(self, channel: Any, body_id: int) -> None:
        """Pump the body to ``channel`` in the background."""
        self._task = asyncio.ensure_future(self._pump(channel, body_id))

    async def _pump(self, channel: Any, body_id: int) -> None:
        gate = self.gate
        try:
            chunk, more = self._first, True
            self._first = b""
            while True:
                self.size += len(chunk)
                if self.size > self.max_body:
                    self.failure = "too_large"
                    log.info("%s 413 (body over %d bytes)", self.what, self.max_body)
                    channel.notify("body.error", body_id,
                                   f"the request body is larger than the limit of {self.max_body} "
                                   f"bytes (--max-body-size); the client is answered 413")
                    return
                if chunk:
                    channel.notify("body.chunk", body_id, chunk)
                    await gate.sent(len(chunk))
                if not more:
                    channel.notify("body.end", body_id)
                    return
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self.failure = "gone"
                    log.info("%s: the client went away after %d of %s body bytes; the Worker's "
                             "read of the body fails", self.what, self.size,
                             self.declared if self.declared is not None else "its")
                    channel.notify("body.error", body_id,
                                   f"the client went away after {self.size} of "
                                   f"{self.declared if self.declared is not None else 'its'} "
                                   f"body bytes; the request body is incomplete")
                    return
                chunk, more = message.get("body", b""), message.get("more_body", False)
        except asyncio.CancelledError:
            if not channel.closed:
                channel.notify("body.error", body_id, "the request ended before its body was read")
            raise
        finally:
            self._finished.set()

    def stop(self) -> None:
        """The request is over: stop reading (a Worker that never read its body)."""
        self.gate.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def receive_after(self) -> dict[str, Any]:
        """``receive`` for the response's disconnect watcher: the body's own messages are
        the pump's, so it waits for the pump to end first."""
        await self._finished.wait()
        if self.failure == "gone":
            return {"type": "http.disconnect"}
        if self._task is not None and self._task.cancelled():
            await asyncio.Event().wait()  # the body was abandoned unread: nothing to watch
        return await self._receive()
