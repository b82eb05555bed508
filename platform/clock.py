"""The platform clock: one source of "now" and of timers for every binding.

Why one clock: virtual time in tests must move sleeps, retry delays, queue batch timeouts,
KV expiry, alarms and crons together. Bindings never call ``time.time()`` or
``asyncio.sleep`` for platform timers; they ask the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
import time
from collections.abc import Callable
from typing import Any

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "y": 31536000, "year": 31536000, "years": 31536000,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*\Z")
_MILLIS = re.compile(r"^\s*(-?\d+)\s*\Z")


def parse_duration(value: Any, *, what: str = "duration") -> float:
    """Seconds from a Cloudflare-style duration: a number of milliseconds or "5 minutes".

    Raises ValueError naming ``what``, the bad value and the accepted forms; the result is
    always a finite number >= 0 (NaN, infinity and numbers too large for a float are
    refused, since a timer cannot wait for them).
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected milliseconds or a string like '5 minutes', got {value!r}")
    seconds: float | None = None
    if isinstance(value, (int, float)):
        try:
            seconds = float(value) / 1000.0
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match and match.group(2).lower() in _UNITS:
            seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
        elif millis := _MILLIS.match(value):
            seconds = float(millis.group(1)) / 1000.0
    if seconds is None:
        raise ValueError(
            f"{what}: cannot read {value!r:.80}; use milliseconds (5000) or a string like "
            f"'30 seconds', '5 minutes', '2 hours', '1 day'")
    if seconds != seconds:  # NaN
        raise ValueError(f"{what}: {value!r} is not a number; use milliseconds or a string like '5 minutes'")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r:.80}")
    if math.isinf(seconds):
        raise ValueError(f"{what}: {value!r:.80} is too large; use a finite number of milliseconds "
                         f"or a string like '1 day'")
    return seconds


class TimerHandle:
    """A scheduled callback; ``cancel()`` is safe to call more than once."""

    __slots__ = ("when", "callback", "cancelled", "housekeeping", "_real")

    def __init__(self, when: float, callback: Callable[[], Any], housekeeping: bool = False) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        #: the platform's own chores (deleting finished workflow instances after their
        #: retention): a virtual clock's auto-advance does not jump to them (see next_due)
        self.housekeeping = housekeeping
        self._real: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self._real is not None:
            self._real.cancel()

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class Clock:
    """Real time: ``now()`` is the wall clock and timers run on the event loop."""

    virtual = False

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def call_at(self, when: float, callback: Callable[[], Any], housekeeping: bool = False) -> TimerHandle:
        """Run ``callback`` (a plain function) once ``now() >= when``."""
        handle = TimerHandle(when, callback, housekeeping)
        self._arm(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], Any]) -> TimerHandle:
        return self.call_at(self.now() + delay, callback)

    def _arm(self, handle: TimerHandle) -> None:
        loop = asyncio.get_running_loop()
        handle._real = loop.call_later(max(0.0, handle.when - self.now()), self._fire, handle)

    def _fire(self, handle: TimerHandle) -> None:
        """Run the callback, unless the wall clock says it is still early.

        Why: the event loop times its timers on the monotonic clock and ``now()`` is the
        wall clock; the two drift (NTP slews it), so a timer can fire a few ms before
        ``now() >= when``. A callback that then asks for "the next time after now" (a cron
        re-arming) would get the same time again and run twice.
        """
        if handle.cancelled:
            return
        if self.now() < handle.when:
            self._arm(handle)
            return
        handle.cancelled = True
        handle.callback()

    async def sleep_until(self, when: float) -> None:
        """Sleep on this clock (virtual time aware)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self.call_at(when, wake)
        await future


class VirtualClock(Clock):
    """Time that moves only when a test advances it.

    It starts at the wall-clock time of its creation. Timers wait in a heap until
    ``fire_due()`` runs them; the testing API decides when (after the platform settles).
    """

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], Any], housekeeping: bool = False) -> TimerHandle:
        handle = TimerHandle(when, callback, housekeeping)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        return handle

    def next_due(self, housekeeping: bool = True) -> float | None:
        """When the earliest live timer falls due, or None. ``housekeeping=False`` skips
        the platform's chores: auto-advance jumps only to work a test is waiting for, not
        seven days ahead to delete the instance the test just watched finish."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers or housekeeping or not self._timers[0][2].housekeeping:
            return self._timers[0][0] if self._timers else None
        return min((when for when, _, h in self._timers if not h.cancelled and not h.housekeeping), default=None)

    def set_time(self, when: float) -> None:
        if when > self._now:
            self._now = when

    def fire_due(self) -> int:
        """Run every timer due at the current time; returns how many ran."""
        fired = 0
        while self._timers and self._timers[0][0] <= self._now:
            _, _, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            handle.cancelled = True
            handle.callback()
            fired += 1
        return fired
