"""A stopped isolate stays stopped: nothing (a call, a reload that was draining, the WebSocket
table taking back sockets) brings its process back with the old config, outside the platform
that replaced it."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_app

from edgelet.supervisor import IsolateError
from edgelet.testing import Platform

WORKER = {
    "wrangler_like.toml": 'name = "w"\nmain = "w.py"\ncompatibility_date = "2026-04-01"\n',
    "w.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """,
}


async def test_start_restart_and_calls_are_refused_after_stop(tmp_path: Path) -> None:
    write_app(tmp_path, WORKER)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        isolate = p.host.isolates["w"]
        assert (await p.fetch("/")).status == 200
        await isolate.stop()
        for attempt in (isolate.start, isolate.restart):
            with pytest.raises(IsolateError, match="has stopped") as refused:
                await attempt()
            assert refused.value.status == 503
        assert isolate.pid is None or isolate._process.returncode is not None
        assert (await p.fetch("/")).status == 503


async def test_a_reload_of_an_isolate_stopped_meanwhile_is_skipped_not_raised(tmp_path: Path) -> None:
    # a config edit replaces (stops) the isolate while a script reload of it drains: the
    # file watcher's reload must end quietly, or the watcher itself would stop reloading
    write_app(tmp_path, WORKER)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        await p.host.isolates["w"].stop()
        await p.host.reload("w")  # no exception
