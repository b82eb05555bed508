"""A queue seen from a test: send like a producer Worker, then look at what the queue holds.

``Plugin.queue_handle(worker, binding)`` returns one. Sending goes through the same checks
and storage as a Worker's ``send`` (so limits and durability are the same); bodies are
encoded in the test process, which for ``pickle`` is the producer's side anyway. Reading
never unpickles: pickle bodies show as ``None``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edgelet.bindings.queues import codec
from edgelet.bindings.queues.storage import ACKED, STATE_CODES, STATE_NAMES


class Record(dict):
    """A dict that also allows attribute access (``m.body`` as well as ``m["body"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class QueueHandle:
    """``send``/``sendBatch`` as in a Worker, plus ``messages()`` and ``delivered()``."""

    def __init__(self, broker: Any, queue: str, default_delay: float) -> None:
        self._broker = broker
        self.name = queue
        self._default_delay = default_delay

    async def send(self, body: Any, options: dict[str, Any] | None = None, /, **kwargs: Any) -> str:
        """Enqueue one message (stored before this returns); returns its id."""
        where = f"queue {self.name}: send()"
        message = codec.prepare_one(body, options, kwargs, where)
        return self._broker.send(self.name, [message], None, self._default_delay, where)[0]

    async def sendBatch(self, messages: Any, options: dict[str, Any] | None = None, /,  # noqa: N802
                        **kwargs: Any) -> list[str]:
        """Enqueue up to 100 messages at once, all or none; returns their ids."""
        where = f"queue {self.name}: sendBatch()"
        wire, batch_delay = codec.prepare_batch(messages, options, kwargs, where)
        return self._broker.send(self.name, wire, batch_delay, self._default_delay, where)

    send_batch = sendBatch

    async def messages(self, state: str | None = None) -> list[Record]:
        """What the queue holds, oldest first: ``id, body, content_type, attempts, state, timestamp``.

        ``state`` filters: ``pending``, ``inflight``, ``acked`` (the most recent ones only)
        or ``dead`` (dropped after its retries, when there is no dead-letter queue).
        """
        code = None
        if state is not None:
            if state not in STATE_CODES:
                raise ValueError(f"unknown message state {state!r}; use one of "
                                 f"{', '.join(STATE_CODES)} or None for all")
            code = STATE_CODES[state]
        return [_record(row) for row in self._broker.store.messages(self.name, code)]

    async def delivered(self) -> list[Record]:
        """Messages acked so far, in the order they were acked (the last 1000 per queue)."""
        return [_record(row) for row in self._broker.store.messages(self.name, ACKED)]

    async def stats(self) -> Record:
        """The queue's counts, as ``edgelet queues list`` shows them."""
        return Record(self._broker.summary(self.name))

    def __repr__(self) -> str:
        return f"<queue handle {self.name}>"


def _record(row: tuple[Any, ...]) -> Record:
    message_id, ts_ms, content_type, data, attempts, state = row
    body = None
    if content_type not in codec.OPAQUE_TYPES:
        try:
            body = codec.decode_body(content_type, data)
        except ValueError:
            body = None
    return Record(id=message_id, body=body, content_type=content_type, attempts=attempts,
                  state=STATE_NAMES[state], timestamp_ms=ts_ms,
                  timestamp=datetime.fromtimestamp(ts_ms / 1000, tz=UTC))
