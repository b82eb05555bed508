"""An alarm() handler's wall time: Cloudflare gives it 15 minutes, whatever the Worker's
request_timeout_ms. A slow alarm that succeeds runs once (it used to be timed out at
request_timeout_ms and retried while it still ran); one past the limit
(EDGELET_DO_ALARM_TIMEOUT here) is cancelled, logged with the limit, and retried after it
ended, never beside itself."""

from __future__ import annotations

import time
from typing import Any

import pytest

CONFIG = """
    name = "app"
    main = "app.py"
    durable_objects.bindings = [{ name = "OBJ", class_name = "Slow" }]
    [limits]
    request_timeout_ms = 1000
"""

APP = """
    import asyncio, time
    from workers import DurableObject, Response, WorkerEntrypoint

    class Slow(DurableObject):
        running = False

        async def arm(self, seconds):
            await self.ctx.storage.put("seconds", seconds)
            await self.ctx.storage.setAlarm(int(time.time() * 1000) + 50)

        async def alarm(self, info=None):
            if Slow.running:
                await self.ctx.storage.put("overlap", True)
            Slow.running = True
            try:
                runs = (await self.ctx.storage.get("runs") or 0) + 1
                await self.ctx.storage.put("runs", runs)
                if runs == 1:
                    await asyncio.sleep(await self.ctx.storage.get("seconds"))
                    await self.ctx.storage.put("first_finished", True)
            finally:
                Slow.running = False

        async def state(self):
            return await self.ctx.storage.get(["runs", "overlap", "first_finished"])

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            o = self.env.OBJ.getByName("x")
            if "/arm/" in request.url:
                await o.arm(float(request.url.rsplit("/", 1)[1]))
                return Response("armed")
            return Response.json(await o.state())
"""


def _settle(s: Any, want: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = s.get("/state")
        if r.status_code != 200:   # the alarm holds the gate longer than request_timeout_ms
            time.sleep(0.2)
            continue
        state = r.json()
        if state == want:
            time.sleep(1.0)   # and it stays so (no late retry)
            return s.get("/state").json()
        time.sleep(0.2)
    return state


def test_a_slow_alarm_longer_than_request_timeout_runs_once(dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_DO_ALARM_BACKOFF", "0.2")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    assert s.get("/arm/1.8").text == "armed"   # 1.8 s > request_timeout_ms (1 s)
    state = _settle(s, {"runs": 1, "first_finished": True}, timeout=8)
    assert state == {"runs": 1, "first_finished": True}, (state, s.logs()[-2000:])
    assert "retry" not in s.logs()


def test_an_alarm_past_its_wall_time_is_cancelled_then_retried(dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_DO_ALARM_BACKOFF", "0.2")
    monkeypatch.setenv("EDGELET_DO_ALARM_TIMEOUT", "0.5")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP})
    assert s.get("/arm/3").text == "armed"
    state = _settle(s, {"runs": 2}, timeout=8)
    assert state == {"runs": 2}, (state, s.logs()[-2000:])   # no overlap, first one cut short
    logs = s.wait_for_log("wall-time limit")
    assert "alarm() of Durable Object Slow x ran longer than 0.5 s, the wall-time limit" in logs, logs[-2000:]
    assert "retry 1 of 6" in logs, logs[-2000:]
