"""Host side of Queues: producer bindings, the broker's life cycle, API routes and CLI.

The broker (``broker.py``) does the work; this module only connects it to the host.
"""

from __future__ import annotations

import logging
from typing import Any

from edgelet.bindings import BindingPlugin
from edgelet.bindings.queues import schema
from edgelet.bindings.queues.config import QueueProducer
from edgelet.channel import NOT_NOW

log = logging.getLogger("edgelet.queues")


class Plugin(BindingPlugin):
    kind = "queues"

    def __init__(self) -> None:
        super().__init__()
        self.broker: Any = None
        self._producers: dict[tuple[str, str], QueueProducer] = {}

    def configure(self, config: Any) -> None:
        self._producers = {(w.name, d.binding): d for w in config.workers for d in w.decls(self.kind)
                           if isinstance(d, QueueProducer)}

    def env_bindings(self, worker: Any) -> dict[str, dict[str, Any]]:
        return {d.binding: {"queue": d.queue, "delivery_delay": d.delivery_delay}
                for d in worker.decls(self.kind) if isinstance(d, QueueProducer)}

    # -- life cycle ---------------------------------------------------------------------
    async def start(self, host: Any) -> None:
        from edgelet.bindings.queues.broker import Broker
        from edgelet.bindings.queues.storage import QueueStore
        self.host = host
        self.broker = Broker(host, QueueStore(host.database(schema.DATABASE)))
        self.broker.recover()

    async def after_start(self) -> None:
        """Isolates are up: warn about consumers without a handler, deliver the backlog."""
        assert self.host is not None
        for name, consumer in self.broker.consumers.items():
            handlers = self.host.handlers(consumer.worker)
            if handlers is not None and "queue" not in handlers:
                log.warning(
                    "Worker %r consumes queue %r but defines no queue handler; add "
                    "`async def queue(self, batch, env, ctx)` to its Default entrypoint",
                    consumer.worker, name)
        self.broker.start_delivery()

    async def after_reload(self, worker: str) -> None:
        if self.broker is not None:
            self.broker.worker_reloaded(worker)

    async def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    # -- runtime ------------------------------------------------------------------------
    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        decl = self._producers.get((worker, binding))
        if decl is None or method != "send":
            return await super().handle_call(worker, binding, method, args)
        wire, batch_delay = args
        self.broker.send(decl.queue, wire, batch_delay, float(decl.delivery_delay),
                         where=f"queue binding {binding} ({decl.queue})")
        return None

    def binding_call_now(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        """``send`` read from an isolate's channel: checked now, stored with the other sends
        of the same read in one commit, answered after it (``Broker.send_later``)."""
        decl = self._producers.get((worker, binding))
        if decl is None or method != "send" or self.broker is None:
            return NOT_NOW
        wire, batch_delay = args
        return self.broker.send_later(decl.queue, wire, batch_delay, float(decl.delivery_delay),
                                      where=f"queue binding {binding} ({decl.queue})")

    def queue_handle(self, worker: str | None, binding: str) -> Any:
        """A host-side handle on a queue, for tests: the producer API plus inspection.

        ``worker``/``binding`` name a producer binding (its ``delivery_delay`` applies). With
        ``worker=None``, ``binding`` may be a binding name that only one Worker uses, or a
        queue name.
        """
        from edgelet.bindings.queues.handle import QueueHandle
        if self.broker is None:
            raise RuntimeError("the queues binding is not started; start the platform first")
        decl = self._producers.get((worker, binding)) if worker else None
        if decl is None and worker is None:
            matches = [d for (w, b), d in self._producers.items() if b == binding]
            if len(matches) == 1:
                decl = matches[0]
            elif not matches and binding in self.broker.names():
                return QueueHandle(self.broker, binding, 0.0)
        if decl is None:
            known = ", ".join(f"{w}.{b} -> {d.queue}" for (w, b), d in sorted(self._producers.items()))
            raise LookupError(
                f"no queue producer binding {binding!r}"
                f"{f' in Worker {worker!r}' if worker else ''}; bindings: {known or 'none'}; "
                f"queues: {', '.join(self.broker.names()) or 'none'}")
        return QueueHandle(self.broker, decl.queue, float(decl.delivery_delay))

    def routes(self) -> list[Any]:
        from edgelet.bindings.queues.routes import routes
        return routes(self)

    def cli(self) -> Any:
        from edgelet.bindings.queues.cli import queues
        return queues
