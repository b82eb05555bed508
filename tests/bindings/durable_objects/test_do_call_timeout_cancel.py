"""A Durable Object call the host gives up on (504) is cancelled in the object's isolate: the
event stops, its object's input gate opens for the next call, and the log says so.

The caller is another Worker, so the call goes through the host (a Worker calling its own
class delivers in its isolate and already cancels at its own limit: local.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from crash import APPEND, lines, wait_until

CONFIG = """
    [[workers]]
    name = "front"
    main = "front.py"
    limits = { request_timeout_ms = 20000 }
    durable_objects.bindings = [{ name = "SLOW", class_name = "Slow", script_name = "back" }]

    [[workers]]
    name = "back"
    main = "back.py"
    limits = { request_timeout_ms = 1000 }
    durable_objects.bindings = [{ name = "SLOW", class_name = "Slow" }]
"""

FRONT = """
    from urllib.parse import urlsplit
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            what, name, *rest = urlsplit(request.url).path.strip("/").split("/")
            stub = self.env.SLOW.getByName(name)
            try:
                if what == "hang":
                    return Response(await stub.hang("/" + "/".join(rest)))
                return Response(await stub.quick())
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=504)
"""

BACK = """
    import asyncio, os
    from workers import DurableObject, Response, WorkerEntrypoint
""" + "\n".join("    " + line for line in APPEND.splitlines()) + """

    class Slow(DurableObject):
        async def hang(self, log):
            await self.ctx.storage.put("log", log)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                append(log, "cancelled")
                raise
            return "woke"

        async def quick(self):
            return "quick"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("back")
"""


def test_a_call_the_host_gave_up_on_is_cancelled_and_frees_its_object(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    s = dev({"wrangler_like.toml": CONFIG, "front.py": FRONT, "back.py": BACK})
    r = s.get(f"/hang/obj{log}")
    assert r.status_code == 504 and "did not answer" in r.text, r.text
    assert wait_until(lambda: lines(log), timeout=10,
                      what=lambda: f"the abandoned event was never cancelled:\n{s.logs()[-2000:]}") == ["cancelled"]
    t0 = time.monotonic()
    r = s.get("/quick/obj")  # the object's gate is free again: no wait, no 504
    assert r.status_code == 200 and r.text == "quick", r.text
    assert time.monotonic() - t0 < 1.0
    assert wait_until(lambda: "the event was cancelled in the isolate" in s.logs(), timeout=5,
                      what=lambda: f"the log does not say the event was cancelled:\n{s.logs()[-2000:]}")
