"""``/cdn-cgi/handler/scheduled`` takes Miniflare's parameters: ``time`` (the event's
``scheduledTime`` in epoch ms; it was ignored, so a handler that branches on the date could
not be tried), ``format=json``, and a bad ``time`` or Worker is a 4xx saying what to pass."""

from __future__ import annotations

import json
from typing import Any

import pytest

APP = {
    "wrangler_like.toml": """
[[workers]]
name = "front"
main = "front.py"

[[workers]]
name = "other"
main = "other.py"
""",
    "front.py": '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("front")

    async def scheduled(self, controller, env, ctx):
        print(f"fired cron={controller.cron!r} at={controller.scheduledTime}")
        if controller.scheduledTime == 1:
            raise RuntimeError("no run at epoch 1")
''',
    "other.py": '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("other")
''',
}


@pytest.fixture(scope="module")
def s(shared_dev: Any) -> Any:
    return shared_dev(APP)


def test_time_sets_scheduled_time(s: Any) -> None:
    r = s.get("/cdn-cgi/handler/scheduled?cron=0+6+*+*+1&time=1784246400000")
    assert (r.status_code, r.text) == (200, "Ran scheduled event")
    s.wait_for_log("fired cron='0 6 * * 1' at=1784246400000", 10)


def test_time_zero_is_epoch_zero_not_now(s: Any) -> None:
    assert s.get("/cdn-cgi/handler/scheduled?time=0").status_code == 200
    s.wait_for_log("fired cron='* * * * *' at=0", 10)


def test_format_json_reports_the_outcome(s: Any) -> None:
    r = s.get("/cdn-cgi/handler/scheduled?format=json&time=1700000000000")
    assert r.status_code == 200
    assert r.json() == {"outcome": "ok", "noRetry": False}
    r = s.get("/cdn-cgi/handler/scheduled?format=json&time=1")
    assert r.status_code == 500
    body = json.loads(r.text)
    assert body["outcome"] == "exception" and "no run at epoch 1" in body["error"]


@pytest.mark.parametrize("time", ["abc", "1e3", "-5", "12345678901234567890", "１２"])
def test_a_time_that_is_not_epoch_ms_is_a_400_saying_what_to_pass(s: Any, time: str) -> None:
    r = s.get("/cdn-cgi/handler/scheduled", params={"time": time})
    assert r.status_code == 400
    assert "is not a time: pass the event's scheduledTime as epoch milliseconds" in r.text
    assert f"time={time[:40]!r}" in r.text


def test_an_unknown_worker_lists_the_workers(s: Any) -> None:
    r = s.get("/cdn-cgi/handler/scheduled?worker=nope")
    assert r.status_code == 404
    assert "no Worker named 'nope'; Workers: front, other" in r.text


async def test_the_testing_api_sets_scheduled_time(tmp_path: Any) -> None:
    from edgelet.testing import Platform
    for name, text in APP.items():
        (tmp_path / name).write_text(text)
    async with Platform(str(tmp_path / "wrangler_like.toml"), clock="virtual") as p:
        await p.scheduled("0 6 * * 1", scheduled_time=1784246400000)
        with pytest.raises(Exception, match="RuntimeError: no run at epoch 1"):
            await p.scheduled(scheduled_time=1)
        with pytest.raises(TypeError, match="scheduled_time must be epoch milliseconds"):
            await p.scheduled(scheduled_time=1.5)  # type: ignore[arg-type]


SHORT = {
    "wrangler_like.toml": APP["wrangler_like.toml"],
    # the short signature: fetch(self) and scheduled(self, controller)
    "front.py": '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    def fetch(self):
        return Response("front")

    async def scheduled(self, controller):
        print(f"short cron={controller.cron!r}")
''',
    "other.py": '''
from workers import WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def scheduled(self, controller, env, ctx):
        print(f"other cron={controller.cron!r} has env={env is not None}")
''',
}


def test_test_scheduled_serves_wranglers_path(dev: Any) -> None:
    """``dev --test-scheduled`` answers ``/__scheduled`` as wrangler's does (Cloudflare's cron
    template says to curl it); without the flag the path is the Worker's own."""
    s = dev(SHORT, "--test-scheduled")
    r = s.get("/__scheduled?cron=*/5+*+*+*+*")
    assert (r.status_code, r.text) == (200, "Ran scheduled event")
    s.wait_for_log("short cron='*/5 * * * *'", 10)
    assert s.get("/anything").text == "front"
    # a Worker with only a scheduled handler can be tried too; the cron defaults to ""
    r = s.get("/__scheduled", headers={"host": f"other.localhost:{s.port}"})
    assert (r.status_code, r.text) == (200, "Ran scheduled event")
    s.wait_for_log("other cron='' has env=True", 10)
    assert s.get("/", headers={"host": f"other.localhost:{s.port}"}).status_code == 500


def test_without_the_flag_the_path_is_the_workers(dev: Any) -> None:
    s = dev(SHORT)
    assert s.get("/__scheduled").text == "front"
    assert "short cron" not in s.logs()
