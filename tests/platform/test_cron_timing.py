"""Crons fire once per scheduledTime even when a timer fires early (issue 13: N1)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from edgelet.clock import Clock, VirtualClock
from edgelet.cron import CronScheduler


class EarlyClock(VirtualClock):
    """A clock whose timers fire up to ``early`` seconds before they fall due, as the
    real one does when the loop's monotonic clock runs ahead of the wall clock."""

    def __init__(self, start: float, early: float) -> None:
        super().__init__(start)
        self.early = early

    def fire_due(self) -> int:
        now = self._now
        self._now = now + self.early  # let the heap treat timers due soon as due now
        try:
            due = [t for t in self._timers if t[0] <= self._now and not t[2].cancelled]
        finally:
            self._now = now
        for _, _, handle in sorted(due, key=lambda t: (t[0], t[1])):
            if not handle.cancelled:
                handle.cancelled = True
                handle.callback()
        self._timers = [t for t in self._timers if not t[2].cancelled]
        return len(due)


async def test_a_cron_timer_that_fires_early_does_not_fire_the_same_minute_twice() -> None:
    minute = 1_800_000_000.0  # a whole minute (UTC epoch seconds divisible by 60)
    clock = EarlyClock(start=minute + 10, early=0.5)
    fired: list[int] = []

    async def scheduled(worker: str, cron: str, when_ms: int) -> None:
        fired.append(when_ms)

    tasks: list[asyncio.Task[Any]] = []
    host = SimpleNamespace(
        clock=clock, scheduled=scheduled,
        config=SimpleNamespace(workers=[SimpleNamespace(name="w", crons=["* * * * *"])]),
        spawn=lambda coro, name: tasks.append(asyncio.ensure_future(coro)))
    scheduler = CronScheduler(host)  # type: ignore[arg-type]
    scheduler.start()
    first = minute + 60
    for at in (first - 0.3, first - 0.1, first, first + 0.2, first + 30, first + 59.8, first + 60):
        clock.set_time(at)
        clock.fire_due()
        await asyncio.gather(*tasks)
    assert fired == [int(first * 1000), int((first + 60) * 1000)]
    assert scheduler.armed == 1  # fired timers are not kept
    scheduler.stop()
    assert scheduler.armed == 0


async def test_real_clock_never_runs_a_timer_before_its_time() -> None:
    """The loop's timers run on the monotonic clock; ``now()`` is the wall clock. When the
    wall clock falls behind (an NTP slew), the loop fires early: the clock must wait."""

    class SlewedClock(Clock):
        offset = 0.0

        def now(self) -> float:
            return time.time() + self.offset

    clock = SlewedClock()
    seen: list[float] = []
    done = asyncio.get_running_loop().create_future()
    when = clock.now() + 0.1
    clock.call_at(when, lambda: (seen.append(clock.now()), done.set_result(None)))
    clock.offset = -0.3  # the wall clock steps back after the timer was armed
    await asyncio.wait_for(done, 5)
    assert seen[0] >= when
