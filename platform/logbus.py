"""Fan-out of log lines and platform events to ``edgelet tail`` subscribers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

MAX_BACKLOG = 1000


class LogBus:
    """Subscribers get every event published after they subscribe; slow ones drop lines."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
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
    """Publishes the platform's own log records (requests, batches, steps) to the bus."""

    def __init__(self, bus: LogBus) -> None:
        super().__init__(logging.INFO)
        self._bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "edgelet.worker":  # published by the host with the Worker's name
            return
        try:
            self._bus.publish({"type": "platform", "logger": record.name,
                               "level": record.levelname.lower(), "message": record.getMessage()})
        except Exception:  # pragma: no cover
            pass
