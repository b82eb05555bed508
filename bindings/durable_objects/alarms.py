"""Alarms: ``storage.setAlarm(t)`` runs the object's ``alarm()`` at ``t``, at least once.

The object's alarm lives in its own database, committed with its data (see
``isolate/storage.py``); the host's index holds the wake-up time, which the isolate keeps at
or before that alarm across a kill -9 (an earlier alarm reaches the host before its commit,
a later one or a deletion after). So alarms survive restarts and those that fell due while
the platform was down fire as soon as it is back; a wake-up the object no longer backs is
answered ``{"ran": False, "alarm": ...}`` without running ``alarm()``, and the index takes
the object's value. Objects from before (no alarm row) keep the index as their alarm.

One ``host.clock`` timer is armed for the earliest alarm (virtual time moves
it in tests); when it fires, a task runs what is due and re-arms. A failing ``alarm()`` is
retried with exponential backoff (Cloudflare: from 2 s, doubling, at most 6 retries), then
given up with an error in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edgelet.bindings.durable_objects.index import ObjectIndex
from edgelet.env_seconds import seconds_from_env

log = logging.getLogger("edgelet.durable_objects")

MAX_RETRIES = 6
DEFAULT_BACKOFF = 2.0
#: Cloudflare gives an alarm() handler 15 minutes of wall time
DEFAULT_ALARM_TIMEOUT = 15 * 60.0
#: how much longer than that the host waits for the isolate's answer (which comes as soon
#: as the isolate has cancelled a handler past the limit)
ALARM_ANSWER_GRACE_S = 30.0

#: (namespace, id, name, retry, final, now_ms) -> the isolate's answer
Dispatch = Callable[[str, str, "str | None", int, bool, int], Awaitable[Any]]


def backoff_base() -> float:
    """Seconds before the first retry; ``EDGELET_DO_ALARM_BACKOFF`` overrides (tests)."""
    return seconds_from_env("EDGELET_DO_ALARM_BACKOFF", DEFAULT_BACKOFF, log, positive=False)


def alarm_timeout() -> float:
    """Wall-time limit of an alarm() handler; ``EDGELET_DO_ALARM_TIMEOUT`` (seconds) overrides."""
    return seconds_from_env("EDGELET_DO_ALARM_TIMEOUT", DEFAULT_ALARM_TIMEOUT, log)


class AlarmScheduler:
    """Arms, fires and retries every object's alarm from the host index."""

    def __init__(self, host: Any, index: ObjectIndex, dispatch: Dispatch) -> None:
        self.host = host
        self.index = index
        self.dispatch = dispatch
        self.backoff = backoff_base()
        self.max_retries = MAX_RETRIES
        self._timer: Any = None
        self._timer_at: int | None = None
        #: alarms whose handler runs now: (ns, id) -> the alarm time being served
        self._running: dict[tuple[str, str], int] = {}
        self._stopped = False

    # -- the storage API (isolate -> host) -----------------------------------------------
    def get(self, ns: str, id_hex: str) -> int | None:
        when, _ = self.index.alarm(ns, id_hex)
        if when is not None and self._running.get((ns, id_hex)) == when:
            return None  # the handler for this very alarm is running
        return when

    def set(self, ns: str, id_hex: str, when_ms: int) -> None:
        self.index.set_alarm(ns, id_hex, int(when_ms))
        log.debug("alarm of %s/%s set for %d", ns, id_hex, when_ms)
        self._arm(int(when_ms))

    def delete(self, ns: str, id_hex: str) -> None:
        when, _ = self.index.alarm(ns, id_hex)
        if when is not None:
            self.index.set_alarm(ns, id_hex, None)

    # -- timers ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopped = False
        self.rearm()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _arm(self, when_ms: int) -> None:
        if self._stopped:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when_ms:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when_ms
        self._timer = self.host.clock.call_at(when_ms / 1000.0, self._fire)

    def rearm(self) -> None:
        """Arm the timer for the earliest alarm that is not running now."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        for ns, id_hex, when in self.index.next_alarms(len(self._running) + 1):
            if (ns, id_hex) not in self._running:
                self._arm(when)
                return

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        if not self._stopped:
            self.host.spawn(self._drain(), name="durable_objects alarms")

    async def _drain(self) -> None:
        for ns, id_hex, name, when, retry in self.index.due(self.host.clock.now_ms()):
            key = (ns, id_hex)
            if key in self._running:
                continue
            self._running[key] = when
            self.host.spawn(self._run(ns, id_hex, name, when, retry),
                            name=f"durable_objects alarm {ns}/{id_hex}")
        self.rearm()

    async def _run(self, ns: str, id_hex: str, name: str | None, when: int, retry: int) -> None:
        key = (ns, id_hex)
        error: str | None = None
        skipped: dict[str, Any] | None = None
        try:
            answer = await self.dispatch(ns, id_hex, name, retry, retry >= self.max_retries,
                                         self.host.clock.now_ms())
            if answer[0] != 0:
                error = f"{answer[1]}: {answer[2]}"
            elif isinstance(answer[1], dict) and answer[1].get("ran") is False:
                skipped = answer[1]
        except Exception as exc:  # the isolate crashed or the class is gone
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._running.pop(key, None)
        if self._stopped:
            return
        current, _ = self.index.alarm(ns, id_hex)
        who = f"{ns} {name or id_hex}"
        if skipped is not None:
            actual = skipped.get("alarm")
            if current == when:  # unchanged meanwhile: take the object's own value
                self.index.set_alarm(ns, id_hex, actual if isinstance(actual, int) else None)
            log.info("wake-up of Durable Object %s at %d not run: its alarm is %s (the object's "
                     "storage decides; e.g. a change a restart cut short)", who, when,
                     "deleted" if actual is None else f"at {actual}")
        elif error is None:
            if current == when:
                self.index.set_alarm(ns, id_hex, None)
            log.debug("alarm of Durable Object %s ran", who)
        elif current != when:
            log.warning("alarm() of Durable Object %s raised %s; not retried because the alarm "
                        "was changed meanwhile", who, error)
        elif retry < self.max_retries:
            delay = self.backoff * (2 ** retry)
            next_ms = self.host.clock.now_ms() + int(delay * 1000)
            self.index.set_alarm(ns, id_hex, next_ms, retry + 1)
            log.warning("alarm() of Durable Object %s raised %s; retry %d of %d in %g s",
                        who, error, retry + 1, self.max_retries, delay)
        else:
            self.index.set_alarm(ns, id_hex, None)
            log.error("alarm() of Durable Object %s raised %s; gave up after %d retries "
                      "(set a new alarm to try again)", who, error, self.max_retries)
        self.rearm()
