"""The host's queue broker: accepts messages, batches them, delivers them, records outcomes.

Flow: ``send`` stores the messages (committed) and, when the queue has a consumer, kicks
its :class:`Consumer`. A kick spawns one short drain task that takes due messages in
batches (up to ``max_concurrency`` in flight), starts one delivery per batch and, when
nothing more is due, arms one clock timer for the earliest moment something will be (a
batch timeout, a delay, a retry delay). So the broker holds no per-message timers and no
messages in memory beyond the batches in flight, and virtual time moves all of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from edgelet.bindings.queues import codec
from edgelet.bindings.queues.config import QueueConsumer, QueueProducer
from edgelet.bindings.queues.storage import ACKED, QueueStore, Row, Taken
from edgelet.channel import Later
from edgelet.env_seconds import seconds_from_env
from edgelet.supervisor import IsolateError, IsolateReloaded, IsolateStartError

log = logging.getLogger("edgelet.queues")

DEFAULT_MAX_CONCURRENCY = 10
#: seconds between tries to deliver to a consumer whose script does not load
LOAD_RETRY_S = 2.0
_CONTENT_TYPES = frozenset(codec.CONTENT_TYPES)
#: wall time one consumer invocation may take, as on Cloudflare (15 minutes); the
#: environment variable sets another (in seconds, e.g. for tests)
CONSUMER_WALL_LIMIT_S = 15 * 60.0
CONSUMER_WALL_LIMIT_ENV = "EDGELET_QUEUE_CONSUMER_TIMEOUT"


def consumer_wall_limit() -> float:
    """Seconds a consumer invocation may run: :data:`CONSUMER_WALL_LIMIT_ENV`, else 15 min."""
    return seconds_from_env(CONSUMER_WALL_LIMIT_ENV, CONSUMER_WALL_LIMIT_S, log, maximum=24 * 3600)


@dataclass(slots=True)
class Accepted:
    """The checked messages of one send: their ids, the send time, the messages as sent
    (``[content_type, body, delay]``) and when they become due: ``visible_at`` when all at
    once (no per-message delay: stored as one row straight from the wire form), else
    ``rows`` of ``(id, timestamp_ms, content_type, body, visible_at)``."""

    ids: list[str]
    ts: int
    wire: list[list[Any]]
    visible_at: float
    rows: list[tuple[str, int, str, bytes, float]] | None


@dataclass
class QueueInfo:
    """What the configuration says about one queue."""

    name: str
    producers: list[tuple[str, QueueProducer]] = field(default_factory=list)
    consumer: tuple[str, QueueConsumer] | None = None
    #: queues whose consumers dead-letter into this one
    dead_letter_for: list[str] = field(default_factory=list)


def queues_from_config(config: Any) -> dict[str, QueueInfo]:
    """Every queue named by a producer, a consumer or a dead-letter setting."""
    found: dict[str, QueueInfo] = {}
    for worker in config.workers:
        for decl in worker.decls("queues"):
            info = found.setdefault(decl.queue, QueueInfo(decl.queue))
            if isinstance(decl, QueueProducer):
                info.producers.append((worker.name, decl))
            elif isinstance(decl, QueueConsumer):
                info.consumer = (worker.name, decl)
                if decl.dead_letter_queue:
                    dlq = found.setdefault(decl.dead_letter_queue, QueueInfo(decl.dead_letter_queue))
                    dlq.dead_letter_for.append(decl.queue)
    return found


class Broker:
    """All queues of one host."""

    def __init__(self, host: Any, store: QueueStore) -> None:
        self.host = host
        self.store = store
        self.queues = queues_from_config(host.config)
        self.consumers: dict[str, Consumer] = {
            name: Consumer(self, name, *info.consumer)
            for name, info in self.queues.items() if info.consumer is not None}
        self.stopped = False
        # Message ids: 32 hex digits like Cloudflare's, a random per-start prefix plus a
        # counter; uuid4 per message cost 5% of the host's time under load.
        self._id_base = int.from_bytes(os.urandom(8), "big") << 64
        self._id_next = 1
        #: sends checked on a channel read, stored by flush_sends at the end of that read
        self._unsent: list[tuple[str, Accepted, Later]] = []

    # -- life cycle -------------------------------------------------------------------
    def recover(self) -> None:
        """Register the configured queues; what was in flight at a crash is due again."""
        self.store.register(sorted(self.queues))
        moved = self.store.recover(self.host.clock.now())
        if moved:
            log.info("queues: %d message(s) that were being delivered when edgelet stopped "
                     "will be delivered again", moved)

    def start_delivery(self) -> None:
        for consumer in self.consumers.values():
            consumer.kick()

    def worker_reloaded(self, worker: str) -> None:
        """``worker``'s new script loaded: deliver what waited for it now."""
        for consumer in self.consumers.values():
            if consumer.worker == worker:
                consumer.kick()

    def stop(self) -> None:
        self.stopped = True
        for consumer in self.consumers.values():
            consumer.cancel_timer()

    # -- producing --------------------------------------------------------------------
    def send(self, queue: str, wire: Any, batch_delay: Any, default_delay: float,
             where: str) -> list[str]:
        """Validate wire-form messages, store them (committed), kick delivery; return ids.

        Wire form: ``[[content_type, body_bytes, delay_or_None], ...]``. Isolates check all
        of this before calling; the host checks again because it trusts no isolate.
        """
        accepted = self._rows(wire, batch_delay, default_delay, where)
        self._store(queue, accepted)
        self.kick(queue)
        return accepted.ids

    def send_later(self, queue: str, wire: Any, batch_delay: Any, default_delay: float,
                   where: str) -> Later:
        """:meth:`send` for a call read from an isolate's channel: checked now (bad input is
        answered at once), stored by :meth:`flush_sends` once the channel has read every
        message of that read, with the other sends of the read, in one commit. The
        :class:`Later` is answered after that commit, so a send still returns only once
        its messages survive ``kill -9``."""
        later = Later(self.flush_sends)
        self._unsent.append((queue, self._rows(wire, batch_delay, default_delay, where), later))
        return later

    def _store(self, queue: str, accepted: Accepted) -> None:
        if accepted.rows is None:
            self.store.insert_wire(queue, accepted.ts, accepted.visible_at, accepted.ids, accepted.wire)
        else:
            self.store.insert(queue, accepted.rows)

    def flush_sends(self) -> None:
        """Store the sends :meth:`send_later` took, in one transaction that also takes for
        delivery the batches they made due (a full batch needs no timer and no drain task).
        Then the deliveries start and the senders are answered: the deliveries' calls are
        queued first, so when producer and consumer share an isolate one write carries both."""
        unsent, self._unsent = self._unsent, []
        if not unsent:
            return
        now = self.host.clock.now()
        touched = {queue for queue, _, _ in unsent}
        delayed = False
        try:
            with self.store.transaction():
                for queue, accepted, _ in unsent:
                    self._store(queue, accepted)
                    delayed = delayed or accepted.rows is not None or accepted.visible_at > now
                takes = [(c, c.take_ready(now)) for c in map(self.consumers.get, touched) if c is not None]
        except Exception as exc:  # nothing of this read was stored: every sender is told
            log.error("queues: %d send(s) not stored: %s", len(unsent), exc)
            for _, _, later in unsent:
                later.fail(exc)
            for queue in touched:
                self.kick(queue)
            return
        try:
            for consumer, taken in takes:
                for batch in taken:
                    consumer.start(batch)
        except Exception:  # the sends are stored whatever happens here: answer them
            log.exception("queues: starting a delivery failed; its messages stay in flight until "
                          "edgelet restarts, then they are delivered again")
        for _, _, later in unsent:
            later.resolve(None)
        for consumer, _ in takes:
            # a partial batch or a delayed message needs the drain's timer; a consumer with
            # every slot busy is kicked by its deliveries as they end
            if delayed or (consumer.waiting and consumer.in_flight < consumer.max_concurrency):
                consumer.kick()

    def _rows(self, wire: Any, batch_delay: Any, default_delay: float, where: str) -> Accepted:
        """Check wire-form messages; their ids and what to store.

        Why one tight loop: this runs for every message sent, on the host's one thread;
        the checks are codec's (its functions raise the errors), called only for a value
        that fails the quick test."""
        if not isinstance(wire, list):
            raise TypeError(f"{where}: expected a list of messages")
        batch_delay = codec.check_delay(batch_delay, where)
        types, total, delays = _CONTENT_TYPES, 0, False
        for item in wire:
            if item.__class__ is not list or len(item) != 3 or item[1].__class__ is not bytes:
                if not isinstance(item, list) or len(item) != 3 or not isinstance(item[1], bytes):
                    raise TypeError(f"{where}: malformed message {item!r:.80}")
            content_type = item[0]
            if content_type.__class__ is not str or content_type not in types:
                codec.check_content_type(content_type, where)
            if item[2] is not None:
                codec.check_delay(item[2], where)
                delays = True
            total += len(item[1])
        if not wire or len(wire) > codec.MAX_BATCH_MESSAGES or total > codec.MAX_MESSAGE_BYTES:
            # may be over a limit (a batch over 128 KB in all may still be fine): the full check
            try:
                codec.check_sizes([len(item[1]) for item in wire], where)
            except codec.QueueLimitError as exc:
                raise ValueError(str(exc)) from None
        now = self.host.clock.now()
        ts = int(now * 1000)
        first = self._id_base + self._id_next  # the prefix's digits, then the counter's
        self._id_next += len(wire)
        ids = ["%032x" % n for n in range(first, first + len(wire))]  # noqa: UP031 - the fastest form
        default = batch_delay if batch_delay is not None else default_delay
        if not delays:
            return Accepted(ids, ts, wire, now + (default or 0.0), None)
        rows = [(message_id, ts, content_type, body, now + ((default if delay is None else delay) or 0.0))
                for message_id, (content_type, body, delay) in zip(ids, wire, strict=True)]
        return Accepted(ids, ts, wire, now, rows)

    def kick(self, queue: str) -> None:
        consumer = self.consumers.get(queue)
        if consumer is not None:
            consumer.kick()

    # -- inspecting -------------------------------------------------------------------
    def summary(self, name: str) -> dict[str, Any]:
        """One queue as the control API and ``edgelet queues list`` show it."""
        now = self.host.clock.now()
        info = self.queues.get(name) or QueueInfo(name)
        result: dict[str, Any] = {
            "name": name,
            "producers": sorted({w for w, _ in info.producers}),
            "producer_bindings": [{"worker": w, "binding": d.binding} for w, d in info.producers],
            "consumer": info.consumer[0] if info.consumer else None,
            **self.store.summary(name, now),
        }
        consumer = info.consumer[1] if info.consumer else None
        dlq = consumer.dead_letter_queue if consumer else None
        result["dead_letter_queue"] = dlq
        result["dead_letter_backlog"] = self.store.summary(dlq, now)["backlog"] if dlq else None
        result["dead_letter_for"] = info.dead_letter_for
        if consumer is not None:
            result["settings"] = {
                "max_batch_size": consumer.max_batch_size, "max_batch_timeout": consumer.max_batch_timeout,
                "max_retries": consumer.max_retries, "max_concurrency": self.consumers[name].max_concurrency,
                "retry_delay": consumer.retry_delay or 0}
        return result

    def names(self) -> list[str]:
        return sorted(set(self.queues) | set(self.store.queues()))

    def move_back(self, queue: str, message_id: str, to: str | None) -> str:
        """Move a dead letter back: a message waiting in dead-letter queue ``queue`` goes to
        ``to`` (default: the queue that dead-letters into it), a dead message (no
        dead-letter queue) goes back to its own queue. Returns the queue it went to."""
        info = self.queues.get(queue) or QueueInfo(queue)
        if to is None:
            if len(info.dead_letter_for) == 1:
                to = info.dead_letter_for[0]
            elif info.dead_letter_for:
                raise ValueError(f"queue {queue} is the dead-letter queue of "
                                 f"{', '.join(info.dead_letter_for)}; say which with \"to\"")
            else:
                to = queue
        if to not in self.names():
            raise LookupError(f"no queue named {to!r} to move message {message_id} to; queues: "
                              f"{', '.join(self.names())}")
        if not self.store.move(queue, message_id, to, self.host.clock.now()):
            raise LookupError(f"queue {queue} holds no waiting or dead message {message_id!r} (it may "
                              f"have been delivered, purged or be in flight right now)")
        log.info("queue %s: moved message %s back to queue %s", queue, message_id, to)
        self.kick(to)
        return to

    def purge(self, queue: str) -> int:
        """Delete ``queue``'s messages except those being delivered; how many went."""
        purged = self.store.purge(queue)
        log.info("queue %s: purged %d message(s)", queue, purged)
        return purged


class Consumer:
    """Delivery to one queue's consumer Worker: batching, concurrency, outcomes."""

    def __init__(self, broker: Broker, queue: str, worker: str, decl: QueueConsumer) -> None:
        self.broker = broker
        self.queue = queue
        self.worker = worker
        self.decl = decl
        self.max_concurrency = decl.max_concurrency or DEFAULT_MAX_CONCURRENCY
        self.max_attempts = decl.max_retries + 1
        self.retry_delay = float(decl.retry_delay or 0)
        #: seconds one invocation of the consumer may take (wall time) before its batch is
        #: given up, cancelled in the isolate and retried
        self.wall_limit = consumer_wall_limit()
        self.in_flight = 0
        #: the last delivery found the consumer's script failing to load (logged once)
        self.load_failed = False
        #: the last look for a batch left messages due but short of a batch (they need the
        #: drain's batch-timeout timer)
        self.waiting = False
        self._draining = False
        self._again = False
        self._timer: Any = None

    # -- scheduling -------------------------------------------------------------------
    def kick(self) -> None:
        """Something may be due: make sure a drain runs (at most one at a time)."""
        if self.broker.stopped:
            return
        if self._draining:
            self._again = True
            return
        self._draining = True
        self.broker.host.spawn(self._drain(), name=f"queues.drain[{self.queue}]")

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let sends made in the same tick join the batch
            while True:
                self._again = False
                self._fill()
                if not self._again:
                    return
                await asyncio.sleep(0)
        finally:
            self._draining = False

    def _fill(self) -> None:
        store, clock = self.broker.store, self.broker.host.clock
        size, timeout = self.decl.max_batch_size, float(self.decl.max_batch_timeout)
        now = clock.now()
        with store.transaction():
            taken = self.take_ready(now)
        for batch in taken:
            self.start(batch)
        if self.in_flight >= self.max_concurrency or self.broker.stopped:
            return  # a finishing delivery kicks again
        _, oldest = store.due(self.queue, now, size)
        candidates = [w for w in (oldest + timeout if oldest is not None else None,
                                  store.next_visible(self.queue, now)) if w is not None]
        self._arm(min(candidates) if candidates else None)

    def take_ready(self, now: float) -> list[Taken]:
        """Take (in the caller's transaction) a batch for each free delivery slot while a
        full batch is due, or one whose oldest message has waited ``max_batch_timeout``;
        :meth:`start` each once committed."""
        found: list[Taken] = []
        free = self.max_concurrency - self.in_flight
        while len(found) < free:
            taken = self._take_one(now)
            if taken is None:
                break
            found.append(taken)
        return found

    def _take_one(self, now: float) -> Taken | None:
        """One batch, if one is ready (the rule of :meth:`take_ready`), taken in the
        caller's transaction."""
        if self.broker.stopped:
            return None
        store, size = self.broker.store, self.decl.max_batch_size
        count, oldest = store.due(self.queue, now, size)
        self.waiting = oldest is not None
        if oldest is None or (count < size and oldest + float(self.decl.max_batch_timeout) > now):
            return None  # nothing due, or a partial batch still inside its timeout
        taken = store.take(self.queue, now, size)
        return taken if taken.count else None

    def start(self, taken: Taken) -> None:
        """Deliver a committed take in a slot of its own."""
        self.in_flight += 1
        self.broker.host.spawn(self._deliver(taken), name=f"queues.deliver[{self.queue}]")

    def _arm(self, when: float | None) -> None:
        timer = self._timer
        if timer is not None and not timer.cancelled:
            if when is not None and timer.when <= when:
                return  # an earlier (or the same) wake-up is already set
            timer.cancel()
        self._timer = None if when is None else self.broker.host.clock.call_at(when, self.kick)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- delivering -------------------------------------------------------------------
    async def _deliver(self, taken: Taken | None) -> None:
        """Deliver batches in one slot: each outcome is recorded in the transaction that
        takes the next batch, if one is ready, and this slot delivers it (one commit and no
        new task per batch under load); when none is, the slot is freed and the drain runs."""
        store = self.broker.store
        try:
            while taken is not None:
                # the stored values as they are: the isolate decodes them (see pack.py)
                payload = {"queue": self.queue, "parts": [[attempts, blob] for _, attempts, blob in taken.parts]}
                started = time.perf_counter()
                result: dict[str, Any] | None = None
                try:
                    result = await self.broker.host.invoke(self.worker, "queues.deliver", payload,
                                                           timeout=self.wall_limit, cancel=True)
                except asyncio.CancelledError:
                    raise  # stopping: the rows stay in flight and are redelivered on start
                except IsolateStartError as exc:
                    self._wait_for_load(taken, exc)
                    break
                except IsolateReloaded:
                    self._put_back_after_reload(taken)
                    break
                except IsolateError as exc:
                    if exc.status == 504:  # past the wall-time limit: counts, as on Cloudflare
                        log.error("queue %s: Worker %r's consumer did not finish a batch of %d message(s) "
                                  "within its wall-time limit of %g s (Cloudflare's is 15 minutes; %s "
                                  "sets edgelet's); the handler was cancelled and the batch will be "
                                  "retried", self.queue, self.worker, taken.count, self.wall_limit,
                                  CONSUMER_WALL_LIMIT_ENV)
                    else:
                        log.error("queue %s: delivering a batch of %d message(s) to Worker %r failed: "
                                  "%s; the batch will be retried", self.queue, taken.count, self.worker, exc)
                except Exception as exc:
                    log.error("queue %s: delivering a batch of %d message(s) to Worker %r failed: %s; "
                              "the batch will be retried", self.queue, taken.count, self.worker, exc)
                self.load_failed = False
                elapsed_ms = (time.perf_counter() - started) * 1000
                with store.transaction():
                    acked = self._settle(taken, result if isinstance(result, dict) else None)
                    following = self._take_one(self.broker.host.clock.now())
                log.info("QUEUE %s %d/%d (%.1f ms)", self.queue, acked, taken.count, elapsed_ms)
                taken = following
        except asyncio.CancelledError:
            self.in_flight -= 1
            raise
        except BaseException:
            self.in_flight -= 1
            self.kick()
            raise
        self.in_flight -= 1
        self.kick()

    def _wait_for_load(self, taken: Taken, exc: Exception) -> None:
        """The consumer's script does not load (an edit half done under ``edgelet dev``): the
        batch never reached a handler, so it is put back without counting an attempt (it
        would otherwise burn its retries into the dead-letter queue, or be dropped, in a
        second). It is tried again every :data:`LOAD_RETRY_S` and at once when the Worker
        is reloaded (:meth:`Broker.worker_reloaded`)."""
        now = self.broker.host.clock.now()
        self.broker.store.release([seq for seq, _, _ in taken.parts], now + LOAD_RETRY_S)
        if not self.load_failed:
            log.error("queue %s: Worker %r does not load, so its %d message(s) wait (not counted as "
                      "attempts) until it does: %s", self.queue, self.worker, taken.count, exc)
        self.load_failed = True

    def _put_back_after_reload(self, taken: Taken) -> None:
        """The consumer's code changed while it handled the batch (a save under ``edgelet
        dev``) and the old process was replaced before the handler finished. On Cloudflare a
        redeploy lets the running invocation finish on the old version, so this cut-off is
        edgelet's, not the Worker's failure: the batch is put back without counting an
        attempt, for the new code to handle at once (a save must not burn retries)."""
        self.broker.store.release([seq for seq, _, _ in taken.parts], self.broker.host.clock.now())
        log.info("queue %s: Worker %r was reloaded while handling a batch of %d message(s); the "
                 "batch goes to the new code (not counted as an attempt)",
                 self.queue, self.worker, taken.count)

    def _settle(self, taken: Taken, result: dict[str, Any] | None) -> int:
        """Apply the handler's decisions to each message; returns how many were acked.

        Precedence follows workerd: a message's own ``ack()``/``retry()`` first, then
        ``ackAll()``/``retryAll()``, then the handler's outcome (returned: ack; raised or
        the isolate failed: retry).
        """
        result = result or {"outcome": "exception"}
        acks = set(result.get("acks") or ())
        retries = {mid: delay for mid, delay in (result.get("retries") or ())}
        ack_all = bool(result.get("ack_all"))
        retry_all = bool(result.get("retry_all"))
        failed = result.get("outcome") != "ok"
        batch_delay = _delay(result.get("retry_all_delay"), self.retry_delay)
        now = self.broker.host.clock.now()
        if not retries and (ack_all or not (retry_all or failed)):
            # every message acked (the usual case; explicit acks change nothing then): one
            # UPDATE per outcome, no message decoded
            self.broker.store.settle_whole(self.queue, now, [(seq, ACKED, now) for seq, _, _ in taken.parts],
                                           taken.count, 0, self.decl.dead_letter_queue)
            return taken.count
        rows = taken.rows()
        acked: list[Row] = []
        retried: list[tuple[Row, float]] = []
        dead: list[Row] = []
        for row in rows:
            if row.id in acks:
                acked.append(row)
                continue
            if row.id in retries:
                delay = _delay(retries[row.id], self.retry_delay)
            elif ack_all or not (retry_all or failed):
                acked.append(row)
                continue
            else:
                delay = batch_delay
            if row.attempts >= self.max_attempts:
                dead.append(row)
            else:
                retried.append((row, now + delay))
        dlq = self.decl.dead_letter_queue
        self.broker.store.settle(self.queue, now, acked, retried, dead, dlq)
        if dead:
            plural = "s" if self.max_attempts != 1 else ""
            for row in dead:
                if dlq:
                    log.warning("queue %s: moved message %s to dead-letter queue %s after %d failed "
                                "attempt%s", self.queue, row.id, dlq, row.attempts, plural)
                else:
                    log.warning("queue %s: dropped message %s after %d failed attempt%s (set "
                                "dead_letter_queue on the consumer to keep failed messages)",
                                self.queue, row.id, row.attempts, plural)
            if dlq:
                self.broker.kick(dlq)
        return len(acked)


def _delay(value: Any, default: float) -> float:
    """A retry delay from the isolate (already checked there), else the consumer default."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            0 <= value <= codec.MAX_DELAY_SECONDS:
        return float(value)
    return default
