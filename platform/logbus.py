"""Fan-out of log lines and platform events to ``edgelet tail`` subscribers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

MAX_BACKLOG = 1000


class LogBus:
    """Subscribers get every event published after they subscribe; slow ones drop lines.

    ``close()`` (the platform is stopping) puts ``None`` in every queue, so that each
    ``tail`` stream can say goodbye and end instead of being cut off mid-response.
    """

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        if self.closed:
            queue.put_nowait(None)
        return queue

    def close(self) -> None:
        """Tell every subscriber the stream ends (a full queue drops its oldest line)."""
        self.closed = True
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        event.setdefault("time", time.time())
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                pass


class LogBusHandler(logging.Handler):
    """Publishes the platform's own log records (requests, batches, steps) to the bus.

    A record logged with ``extra={"worker": name}`` is that Worker's line: ``tail --worker``
    shows it; lines about the platform as a whole carry no Worker.
    """

    def __init__(self, bus: LogBus) -> None:
        super().__init__(logging.INFO)
        self._bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "edgelet.worker":  # published by the host with the Worker's name
            return
        try:
            event = {"type": "platform", "logger": record.name,
                     "level": record.levelname.lower(), "message": record.getMessage()}
            worker = getattr(record, "worker", None)
            if worker is not None:
                event["worker"] = worker
            self._bus.publish(event)
        except Exception:  # pragma: no cover
            pass
