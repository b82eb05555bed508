"""Worker side of Queues: the producer binding and the consumer's ``queue(batch)`` handler.

The producer serializes bodies here, in the sending Worker (so ``pickle`` bodies are pickled
by the code that knows their classes), and the host stores the bytes. A delivered batch
arrives as ``queues.deliver``: the stored values of the batch's rows as they are (``pack.py``),
with each row's attempt count; bodies are decoded here, in the consumer (the only place a
pickled body is ever unpickled), and the handler's ack/retry decisions go back as data.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edgelet.bindings.queues import codec
from edgelet.bindings.queues.pack import unpack

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

log = logging.getLogger("edgelet.queues")

_UNSET = object()


#: the handler of a Worker entrypoint that consumes a queue
HANDLERS = ("queue",)

class QueueProducer:
    """``env.<binding>``: ``await send(body, ...)`` and ``await sendBatch([...], ...)``."""

    def __init__(self, name: str, options: dict[str, Any], runtime: IsolateServices) -> None:
        self._name = name
        self._queue = options["queue"]
        self._runtime = runtime

    async def send(self, body: Any, options: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Enqueue one message; returns once it is stored (it survives a crash from then on)."""
        where = f"queue binding {self._name} ({self._queue}).send()"
        message = codec.prepare_one(body, options, kwargs, where)
        await self._runtime.call("queues", self._name, "send", [message], None)

    async def sendBatch(self, messages: Any, options: dict[str, Any] | None = None, /,  # noqa: N802
                        **kwargs: Any) -> None:
        """Enqueue up to 100 messages (256 KB) at once: all of them, or none on an error."""
        where = f"queue binding {self._name} ({self._queue}).sendBatch()"
        wire, batch_delay = codec.prepare_batch(messages, options, kwargs, where)
        await self._runtime.call("queues", self._name, "send", wire, batch_delay)

    send_batch = sendBatch

    def __repr__(self) -> str:
        return f"<queue producer {self._name} -> {self._queue}>"


def make_binding(name: str, options: dict[str, Any], runtime: IsolateServices) -> QueueProducer:
    return QueueProducer(name, options, runtime)


# -- consumer ---------------------------------------------------------------------------
class _Outcome:
    """What the handler decided, gathered as it calls ack()/retry() and friends.

    Rules are workerd's: the first decision about a message wins (``retry()`` after
    ``ack()`` has no effect, and the reverse), a second ``ack()`` is harmless, and the
    batch-level calls do not override per-message ones.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.acks: dict[str, None] = {}
        self.retries: dict[str, float | None] = {}
        self.ack_all = False
        self.retry_all = False
        self.retry_all_delay: float | None = None

    def ack(self, message_id: str) -> None:
        if message_id in self.acks:
            log.debug("queue %s: message %s was already acked; the second ack() has no effect",
                      self.queue, message_id)
            return
        if self.ack_all:
            return
        if self.retry_all:
            log.warning("queue %s: ack() on message %s after retryAll() has no effect",
                        self.queue, message_id)
            return
        if message_id in self.retries:
            log.warning("queue %s: ack() on message %s after retry() has no effect",
                        self.queue, message_id)
            return
        self.acks[message_id] = None

    def retry(self, message_id: str, delay: float | None) -> None:
        if self.ack_all:
            log.warning("queue %s: retry() on message %s after ackAll() has no effect",
                        self.queue, message_id)
            return
        if message_id in self.acks:
            log.warning("queue %s: retry() on message %s after ack() has no effect",
                        self.queue, message_id)
            return
        self.retries[message_id] = delay

    def wire(self, outcome: str, error: str | None = None) -> dict[str, Any]:
        return {"outcome": outcome, "acks": list(self.acks),
                "retries": [[k, v] for k, v in self.retries.items()],
                "ack_all": self.ack_all, "retry_all": self.retry_all,
                "retry_all_delay": self.retry_all_delay, "error": error}


class Message:
    """One delivered message: ``id``, ``timestamp``, ``body``, ``attempts``, ``ack()``, ``retry()``."""

    __slots__ = ("id", "timestamp_ms", "attempts", "content_type", "_data", "_body", "_outcome")

    def __init__(self, packed: list[Any], attempts: int, outcome: _Outcome) -> None:
        _, self.id, self.timestamp_ms, self.content_type, self._data = packed  # see pack.py
        self.attempts = attempts
        self._body: Any = _UNSET
        self._outcome = outcome

    @property
    def timestamp(self) -> datetime:
        """When the message was sent (UTC)."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    @property
    def body(self) -> Any:
        """The body, decoded on first use so one undecodable body fails only its reader."""
        if self._body is _UNSET:
            self._body = _decode(self.content_type, self._data, self.id, self._outcome.queue)
        return self._body

    def ack(self) -> None:
        """Mark this message delivered; it will not be redelivered even if the handler raises."""
        self._outcome.ack(self.id)

    def retry(self, options: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Deliver this message again later (``delaySeconds``, else the consumer's retry_delay)."""
        where = f"queue {self._outcome.queue}: message.retry()"
        opts = codec.read_options(where, options, kwargs, allowed=("delay_seconds",))
        self._outcome.retry(self.id, codec.check_delay(opts.get("delay_seconds"), where))

    def __repr__(self) -> str:
        return f"<Message {self.id} attempts={self.attempts} {self.content_type}>"


class MessageBatch:
    """The ``batch`` a ``queue`` handler receives: ``queue``, ``messages``, ``ackAll()``, ``retryAll()``."""

    def __init__(self, queue: str, messages: list[Message], outcome: _Outcome) -> None:
        self.queue = queue
        self.messages = messages
        self._outcome = outcome

    def ackAll(self) -> None:  # noqa: N802 - Cloudflare's name
        """Ack every message that was not explicitly retried."""
        outcome = self._outcome
        if outcome.retry_all:
            log.warning("queue %s: ackAll() after retryAll() has no effect", self.queue)
            return
        outcome.ack_all = True

    def retryAll(self, options: dict[str, Any] | None = None, /, **kwargs: Any) -> None:  # noqa: N802
        """Retry every message that was not explicitly acked."""
        where = f"queue {self.queue}: batch.retryAll()"
        opts = codec.read_options(where, options, kwargs, allowed=("delay_seconds",))
        delay = codec.check_delay(opts.get("delay_seconds"), where)
        outcome = self._outcome
        if outcome.ack_all:
            log.warning("queue %s: retryAll() after ackAll() has no effect", self.queue)
            return
        outcome.retry_all = True
        if delay is not None:
            outcome.retry_all_delay = delay

    ack_all = ackAll
    retry_all = retryAll

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Any:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"<MessageBatch {self.queue} of {len(self.messages)}>"


def _decode(content_type: str, data: bytes, message_id: str, queue: str) -> Any:
    try:
        if content_type in codec.OPAQUE_TYPES:
            import pickle

            import cloudpickle  # noqa: F401 - registers what cloudpickle-made pickles need
            return pickle.loads(data)
        return codec.decode_body(content_type, data)
    except Exception as exc:
        raise ValueError(f"queue {queue}: cannot decode the {content_type} body of message "
                         f"{message_id}: {type(exc).__name__}: {exc}") from exc


async def handle_event(runtime: IsolateServices, event: str, payload: Any) -> Any:
    """``queues.deliver``: run the Worker's queue handler on one batch and report decisions."""
    if event != "deliver":
        raise LookupError(f"unknown queues event {event!r}")
    from edgelet.runtime.entrypoints import call_handler
    queue = payload["queue"]
    outcome = _Outcome(queue)
    batch = MessageBatch(queue, [Message(m, attempts, outcome) for attempts, blob in payload["parts"]
                                 for m in unpack(blob)], outcome)
    try:
        fn, ctx = runtime.handler("queue")
        await call_handler(fn, batch, runtime.env, ctx)
    except MemoryError:
        raise
    except Exception as exc:
        runtime.log("error", f"Uncaught exception in queue handler for {queue} "
                             f"(batch of {len(batch.messages)}); the batch will be retried\n"
                             f"{traceback.format_exc()}")
        return outcome.wire("exception", f"{type(exc).__name__}: {exc}")
    return outcome.wire("ok")
