"""Cron triggers that fire on schedule while the platform runs (wrangler only offers the
manual ``/cdn-cgi/handler/scheduled``). Expressions are read with Cloudflare's rules
(``edgelet.cron_syntax``); timing is the platform clock,
so virtual time moves crons too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.clock import TimerHandle
    from edgelet.host import Host

log = logging.getLogger("edgelet.cron")


def next_fire(expr: str, after: float) -> float:
    """Epoch seconds of the first time after ``after`` that ``expr`` matches (UTC), read
    with Cloudflare's rules (:mod:`edgelet.cron_syntax`: weekdays 1-7 from Sunday, ``LW``)."""
    from edgelet.cron_syntax import next_fire as fire  # here: a config without crons never pays
    return fire(expr, after)


class CronScheduler:
    """One live timer per (Worker, cron); each firing arms the next one.

    The next firing is computed from the time that just fired, not from ``now()``: a timer
    that fires a little early (the wall clock against the loop's) must not arm the same
    minute again, so each ``scheduledTime`` runs once.
    """

    def __init__(self, host: Host) -> None:
        self._host = host
        self._timers: dict[tuple[str, int], TimerHandle] = {}
        self.extra: list[tuple[str, Callable[[str, int], Any]]] = []

    def start(self) -> None:
        for worker in self._host.config.workers:
            for index, expr in enumerate(worker.crons):
                self._arm(worker.name, index, expr, self._host.clock.now())

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    @property
    def armed(self) -> int:
        """Timers waiting to fire (one per cron)."""
        return len(self._timers)

    def _arm(self, worker: str, index: int, expr: str, after: float) -> None:
        when = next_fire(expr, after)

        def fire() -> None:
            self._timers.pop((worker, index), None)
            self._host.spawn(self._run(worker, expr, when), name=f"cron {worker} {expr}")
            self._arm(worker, index, expr, max(when, self._host.clock.now()))

        self._timers[(worker, index)] = self._host.clock.call_at(when, fire)

    async def _run(self, worker: str, expr: str, when: float) -> None:
        try:
            await self._host.scheduled(worker, expr, int(when * 1000))
            log.info("CRON %s %r ok", worker, expr, extra={"worker": worker})
        except Exception as exc:
            log.error("CRON %s %r failed: %s", worker, expr, exc, extra={"worker": worker})
