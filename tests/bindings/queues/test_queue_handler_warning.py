"""A consumer Worker without a ``queue`` handler is named at start (through
``HostServices.handlers``, the one view of a Worker's handlers a plug-in has)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import write_app

from edgelet.testing import Platform

CONFIG = """
    [[workers]]
    name = "cons"
    main = "w.py"
    queues.producers = [{ binding = "JOBS", queue = "jobs" }]
    queues.consumers = [{ queue = "jobs" }]
"""

FETCH_ONLY = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""

WITH_QUEUE = FETCH_ONLY + """
        async def queue(self, batch, env, ctx):
            batch.ackAll()
"""


@pytest.mark.parametrize(("script", "warned"), [(FETCH_ONLY, True), (WITH_QUEUE, False)])
async def test_a_consumer_without_a_queue_handler_is_named_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, warned: bool) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "w.py": script})
    with caplog.at_level(logging.WARNING, logger="edgelet.queues"):
        async with Platform(tmp_path / "wrangler_like.toml") as p:
            assert p.host.handlers("cons") == ({"fetch"} if warned else {"fetch", "queue"})
    messages = [r.getMessage() for r in caplog.records if r.name == "edgelet.queues"]
    expected = ["Worker 'cons' consumes queue 'jobs' but defines no queue handler; add "
                "`async def queue(self, batch, env, ctx)` to its Default entrypoint"]
    assert messages == (expected if warned else [])
