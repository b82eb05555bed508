"""The testing API's binding handles with virtual time: what a user's tests would do."""

from __future__ import annotations

import textwrap
from pathlib import Path

from edgelet.testing import Platform

FILES = {
    "wrangler_like.toml": """
        [[workers]]
        name = "web"
        main = "web.py"
        kv_namespaces = [{ binding = "CACHE", id = "cache" }]
        queues.producers = [{ binding = "EVENTS", queue = "events" }]
        queues.consumers = [{ queue = "events", max_batch_size = 5, max_batch_timeout = 30 }]
    """,
    "web.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.method == "POST":
                    await self.env.EVENTS.send({"n": int(await request.text())}, delaySeconds=600)
                    return Response("queued", status=202)
                return Response(str(await self.env.CACHE.get("last")))

            async def queue(self, batch):
                for message in batch.messages:
                    await self.env.CACHE.put("last", str(message.body["n"]))
    """,
}


def app(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "wrangler_like.toml"


async def test_kv_handle_seeds_and_expires_on_virtual_time(tmp_path):
    async with Platform(app(tmp_path), clock="virtual") as p:
        kv = p.kv("CACHE")
        await kv.put("last", "seeded", expirationTtl=120)
        assert await (await p.fetch("/")).text() == "seeded"
        await p.advance("2 minutes")
        assert await (await p.fetch("/")).text() == "None"
        assert await kv.get("last") is None


async def test_queue_delay_and_batch_timeout_follow_virtual_time(tmp_path):
    async with Platform(app(tmp_path), clock="virtual") as p:
        assert (await p.fetch("/", method="POST", body="7")).status == 202
        await p.advance("9 minutes")
        assert await p.kv("CACHE").get("last") is None       # still delayed
        await p.advance("1 minute")                            # delay over; batch waits 30 s
        assert await p.kv("CACHE").get("last") is None
        await p.advance("30 seconds")
        assert await p.kv("CACHE").get("last") == "7"
        await p.queue("EVENTS").send({"n": 8})
        await p.advance("30 seconds")
        assert await p.kv("CACHE").get("last") == "8"
        assert len(await p.queue("EVENTS").delivered()) == 2
