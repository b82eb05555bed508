"""Cron triggers that fire on schedule while the platform runs (wrangler only offers the
manual ``/cdn-cgi/handler/scheduled``). Parsing is croniter's; timing is the platform clock,
so virtual time moves crons too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.clock import TimerHandle
    from edgelet.host import Host

log = logging.getLogger("edgelet.cron")


def next_fire(expr: str, after: float) -> float:
    """Epoch seconds of the first time after ``after`` that ``expr`` matches (UTC)."""
    base = datetime.fromtimestamp(after, tz=UTC)
    return croniter(expr, base).get_next(float)


class CronScheduler:
    """One timer per (Worker, cron); each firing re-arms the next."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._timers: list[TimerHandle] = []
        self.extra: list[tuple[str, Callable[[str, int], Any]]] = []

    def start(self) -> None:
        for worker in self._host.config.workers:
            for expr in worker.crons:
                self._arm(worker.name, expr)

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _arm(self, worker: str, expr: str) -> None:
        clock = self._host.clock
        when = next_fire(expr, clock.now())

        def fire() -> None:
            self._host.spawn(self._run(worker, expr, when), name=f"cron {worker} {expr}")
            self._arm(worker, expr)

        self._timers.append(clock.call_at(when, fire))

    async def _run(self, worker: str, expr: str, when: float) -> None:
        try:
            await self._host.scheduled(worker, expr, int(when * 1000))
            log.info("CRON %s %r ok", worker, expr)
        except Exception as exc:
            log.error("CRON %s %r failed: %s", worker, expr, exc)
