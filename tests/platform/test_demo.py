"""The demo app in wrangler_like.toml, as the README's first command runs it."""

from __future__ import annotations

from pathlib import Path

from edgelet.testing import Platform

ROOT = Path(__file__).resolve().parents[2]


async def test_front_door_service_bindings_and_wasm():
    async with Platform(ROOT / "wrangler_like.toml") as p:
        assert await (await p.fetch("/")).text() == "Hello from edgelet demo!"
        assert await (await p.fetch("/greet?name=ann")).text() == "Hello, ann!"
        wasm = await p.fetch("/wasm")
        assert wasm.status == 200


async def test_jobs_flow_through_queue_into_kv_and_counter():
    async with Platform(ROOT / "wrangler_like.toml", clock="virtual") as p:
        resp = await p.fetch("/enqueue", worker="jobs", method="POST",
                             json=[{"task": "a"}, {"task": "b"}, {"task": "broken", "fail": True}])
        assert resp.status == 202
        await p.advance("10 seconds")
        counter = await (await p.fetch("/count/jobs?peek", worker="counter")).json()
        assert counter["count"] == 2
        keys = (await p.kv("RESULTS", worker="jobs").list()).keys
        assert len(keys) == 2
        delivered = await p.queue("jobs-dlq").delivered()
        assert [m.body for m in delivered] == [{"task": "broken", "fail": True}]


async def test_notes_and_counter_workers():
    async with Platform(ROOT / "wrangler_like.toml") as p:
        assert (await p.fetch("/notes/todo", worker="notes", method="PUT", body="milk")).status == 201
        assert await (await p.fetch("/notes/todo", worker="notes")).text() == "milk"
        first = await (await p.fetch("/count/visits", worker="counter")).json()
        second = await (await p.fetch("/count/visits", worker="counter")).json()
        assert second["count"] == first["count"] + 1
