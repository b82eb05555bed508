"""Queues: ``queues = {producers = [...], consumers = [...]}``.

Producers are bindings (``env.MY_QUEUE.send(...)``); consumers are not bindings but
subscriptions of the Worker's ``queue()`` handler to a queue. ``parse`` returns both,
mixed, in declaration order; only producers have a ``binding`` name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgelet.config import ConfigError, Section

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import PlatformConfig

KEYS: tuple[str, ...] = ("queues",)

#: Cloudflare's bounds, so a config that loads here also deploys there.
MAX_DELAY_SECONDS = 43_200  # 12 hours


@dataclass(frozen=True)
class QueueProducer:
    """``env.<binding>`` sends to ``queue``; ``delivery_delay`` seconds by default."""

    binding: str
    queue: str
    delivery_delay: int = 0
    key_path: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class QueueConsumer:
    """The Worker's ``queue()`` handler consumes ``queue`` with these batching settings."""

    queue: str
    max_batch_size: int = 10
    max_batch_timeout: float = 5.0
    max_retries: int = 3
    dead_letter_queue: str | None = None
    max_concurrency: int | None = None
    retry_delay: int | None = None
    key_path: str = field(default="", compare=False, repr=False)


def _queue_name(t: Section, key: str, *, required: bool) -> str | None:
    example = t.example(key, '"my-queue"')
    value = t.str(key, required=required, fix=f"set {key} to the queue's name, e.g. {example}")
    if value is not None and not value.strip():
        raise t.error(key, "must not be empty", f"set {key} to the queue's name")
    return value


def parse(key: str, section: Section) -> list[QueueProducer | QueueConsumer]:
    queues = section.table(key)
    if queues is None:
        return []
    queues.warn_unknown(("producers", "consumers"))
    out: list[QueueProducer | QueueConsumer] = []
    for t in queues.tables("producers"):
        t.warn_unknown(("binding", "queue", "delivery_delay"))
        binding = t.binding_name("binding")
        queue = _queue_name(t, "queue", required=True)
        assert binding is not None and queue is not None
        delay = t.int("delivery_delay", default=0, min=0, max=MAX_DELAY_SECONDS)
        out.append(QueueProducer(binding=binding, queue=queue, delivery_delay=delay or 0, key_path=t.path))
    for t in queues.tables("consumers"):
        t.warn_unknown(
            (
                "queue",
                "max_batch_size",
                "max_batch_timeout",
                "max_retries",
                "dead_letter_queue",
                "max_concurrency",
                "retry_delay",
                "type",
                "visibility_timeout_ms",
            )
        )
        queue = _queue_name(t, "queue", required=True)
        assert queue is not None
        _refuse_pull_consumer(t, queue)
        dlq = _queue_name(t, "dead_letter_queue", required=False)
        if dlq == queue:
            raise t.error(
                "dead_letter_queue",
                f"queue '{queue}' cannot be its own dead-letter queue",
                "name a different queue, or remove dead_letter_queue to drop failed messages",
            )
        out.append(
            QueueConsumer(
                queue=queue,
                max_batch_size=t.int("max_batch_size", default=10, min=1, max=100) or 10,
                max_batch_timeout=t.number("max_batch_timeout", default=5.0, min=0, max=60) or 0.0,
                max_retries=t.int("max_retries", default=3, min=0, max=100) or 0,
                dead_letter_queue=dlq,
                max_concurrency=t.int("max_concurrency", min=1, max=250),
                retry_delay=t.int("retry_delay", min=0, max=MAX_DELAY_SECONDS),
                key_path=t.path,
            )
        )
    return out


def validate(config: PlatformConfig) -> None:
    """Every consumed queue is fed by someone, and each queue has one consumer.

    A consumer of a queue no Worker produces to (and that is no dead-letter queue) can
    never receive anything, which is almost always a typo in one of the two names.
    """
    produced: set[str] = set()
    dead_letter: set[str] = set()
    for w in config.workers:
        for d in w.decls("queues"):
            if isinstance(d, QueueProducer):
                produced.add(d.queue)
            elif isinstance(d, QueueConsumer) and d.dead_letter_queue:
                dead_letter.add(d.dead_letter_queue)

    consumer_of: dict[str, tuple[str, QueueConsumer]] = {}
    for w in config.workers:
        for d in w.decls("queues"):
            if not isinstance(d, QueueConsumer):
                continue
            where = f"{d.key_path}.queue" if d.key_path else "queues.consumers.queue"
            first = consumer_of.get(d.queue)
            if first is not None:
                other_worker, other = first
                raise ConfigError(
                    w.config_file,
                    where,
                    f"queue '{d.queue}' already has a consumer: "
                    f"Worker '{other_worker}' ({other.key_path or 'queues.consumers'})",
                    "keep one consumer per queue; remove one of the two consumers",
                )
            if d.queue not in produced and d.queue not in dead_letter:
                raise ConfigError(
                    w.config_file,
                    where,
                    f"queue '{d.queue}' has a consumer but no Worker produces to it",
                    "add a producer binding for it "
                    f'(queues.producers = [{{binding = "MY_QUEUE", queue = "{d.queue}"}}]) or remove the consumer',
                )
            consumer_of[d.queue] = (w.name, d)


def _refuse_pull_consumer(t: Section, queue: str) -> None:
    """``type = "http_pull"``: Cloudflare's pull consumers (read over its HTTP API, with
    leases and visibility timeouts) are not emulated. Left to pass, the Worker became a
    push consumer of the queue, which it is not on Cloudflare: its queue() handler (if any)
    would get the messages, or they would fail for want of one."""
    kind = t.str("type", default="worker")
    if kind == "worker":
        return
    if kind == "http_pull":
        raise t.error(
            "type",
            f"queue '{queue}': HTTP pull consumers (type = \"http_pull\") are not emulated by edgelet",
            "remove this consumer to let the queue keep a backlog (`edgelet queues list` counts it, "
            "the control API's GET /queues/<name>/messages lists it), or use a push consumer "
            "(type = \"worker\", the default) with a queue() handler while developing",
        )
    raise t.error(
        "type",
        f"unknown consumer type {kind!r} for queue '{queue}'",
        'use type = "worker" (a push consumer, the default) or remove the key',
    )
