"""Credit-based flow control for bodies that cross the channel in chunks.

Why: the channel's messages are fire-and-forget (``notify``), and each side's reader takes
every message off the socket at once, so a producer faster than its consumer (a 200 MB
upload to a Worker that reads slowly, a Worker streaming to a slow client) would pile the
whole body up in the reader's memory. The producer counts the bytes it sent that the
consumer has not acknowledged yet and waits while that is over :data:`WINDOW`; the consumer
acknowledges each chunk once it has been used (read by the Worker, written to the client).
"""

from __future__ import annotations

import asyncio

#: unacknowledged bytes a producer may have in flight per body
WINDOW = 1024 * 1024


class CreditGate:
    """The producer's side: ``await gate.sent(n)`` after sending ``n`` bytes; ``ack(n)`` when
    the consumer says it used them; ``close()`` lets a waiting producer go (the consumer is
    gone)."""

    __slots__ = ("window", "unacked", "_waiter", "closed", "peak")

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self.unacked = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        #: the most bytes ever in flight (tests and benchmarks read it)
        self.peak = 0

    async def sent(self, size: int) -> None:
        """Count ``size`` bytes as sent; return once fewer than the window are in flight."""
        self.unacked += size
        if self.unacked > self.peak:
            self.peak = self.unacked
        while self.unacked > self.window and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def ack(self, size: int) -> None:
        self.unacked -= size
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self.closed or self.unacked <= self.window):
            waiter.set_result(None)
