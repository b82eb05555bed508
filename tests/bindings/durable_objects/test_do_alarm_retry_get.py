"""``getAlarm()`` inside an alarm() handler, on its first run and on every retry, is None
(workerd's ActorSqlite: "if an alarm handler is currently running, and a new alarm time has
not been set yet, we need to return that there is no alarm"), unless the handler set a new
alarm; outside the handler, while a retry is pending, the alarm is still the time it was
scheduled for (the alarm is deleted only once a run succeeds)."""

from __future__ import annotations

import time
from typing import Any

import pytest

CONFIG = """
    name = "app"
    main = "app.py"
    durable_objects.bindings = [{ name = "OBJ", class_name = "Retried" }]
"""

APP = """
    import time
    from workers import DurableObject, Response, WorkerEntrypoint

    class Retried(DurableObject):
        async def arm(self, fail_runs, set_new):
            await self.ctx.storage.put("plan", [fail_runs, set_new])
            at = int(time.time() * 1000) + 50
            await self.ctx.storage.setAlarm(at)
            return at

        async def alarm(self, info=None):
            fail_runs, set_new = await self.ctx.storage.get("plan")
            seen = await self.ctx.storage.get("seen") or []
            entry = [info.retryCount, await self.ctx.storage.getAlarm()]
            if set_new and info.retryCount == 1:
                await self.ctx.storage.setAlarm(4_000_000_000_000)
                entry.append(await self.ctx.storage.getAlarm())
            seen.append(entry)
            await self.ctx.storage.put("seen", seen)
            if info.retryCount < fail_runs:
                raise RuntimeError("alarm fails on purpose")

        async def state(self):
            return {"seen": await self.ctx.storage.get("seen") or [],
                    "alarm": await self.ctx.storage.getAlarm()}

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            parts = request.url.rstrip("/").rsplit("/", 3)
            o = self.env.OBJ.getByName(parts[-1])
            if "/arm/" in request.url:
                return Response.json(await o.arm(int(parts[-3]), parts[-2] == "new"))
            return Response.json(await o.state())
"""


def _wait(s: Any, name: str, runs: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = s.get(f"/state/{name}").json()
        if len(state["seen"]) >= runs:
            return state
        time.sleep(0.05)
    raise AssertionError(f"alarm ran {len(state.get('seen', []))} times, wanted {runs}: {state}\n"
                         f"{s.logs()[-2000:]}")


def test_get_alarm_is_none_inside_every_run_and_the_scheduled_time_between_retries(
        dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_DO_ALARM_BACKOFF", "0.6")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    at = s.get("/arm/2/keep/a").json()
    state = _wait(s, "a", 1)
    # first run failed; the retry is pending: the alarm is still the scheduled time
    assert state["seen"] == [[0, None]], state
    assert state["alarm"] == at, state
    state = _wait(s, "a", 3)
    assert state["seen"] == [[0, None], [1, None], [2, None]], state   # None in each retry too
    time.sleep(0.2)
    assert s.get("/state/a").json()["alarm"] is None   # the run that succeeded deleted it


def test_an_alarm_set_inside_a_retry_is_what_get_alarm_returns(
        dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_DO_ALARM_BACKOFF", "0.2")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    s.get("/arm/1/new/b")
    state = _wait(s, "b", 2)
    assert state["seen"] == [[0, None], [1, None, 4_000_000_000_000]], state
    time.sleep(0.2)
    assert s.get("/state/b").json()["alarm"] == 4_000_000_000_000
