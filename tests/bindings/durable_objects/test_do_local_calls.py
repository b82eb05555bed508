"""Calls from a Worker to its own Durable Object classes, delivered inside its isolate
(bindings/durable_objects/isolate/local.py), and calls to another Worker's class, routed
by the host: what a caller sees when the object's isolate is SIGKILLed mid-call, after a
``dev`` reload, after eviction, when it gives up waiting; and that the host's index still
lists objects only ever called in place."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx

CONFIG = """
    [[workers]]
    name = "front"
    main = "front.py"
    durable_objects.bindings = [
        { name = "ROOM", class_name = "Room" },
        { name = "VAULT", class_name = "Vault", script_name = "back" },
    ]

    [[workers]]
    name = "back"
    main = "back.py"
"""

FRONT = """
    import asyncio, os
    from urllib.parse import urlparse
    from workers import DurableObject, Response, WorkerEntrypoint

    VERSION = "{version}"

    class Room(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            self.calls = 0

        async def enter(self):
            self.calls += 1
            n = (await self.ctx.storage.get("n") or 0) + 1
            await self.ctx.storage.put("n", n)
            return {{"n": n, "calls": self.calls, "pid": os.getpid(), "version": VERSION}}

        async def slow(self, seconds):
            await self.ctx.storage.put("slow", "started")
            await asyncio.sleep(seconds)
            await self.ctx.storage.put("slow", "finished")
            return "done"

        async def get(self, key):
            return await self.ctx.storage.get(key)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            parts = urlparse(request.url).path.strip("/").split("/")
            op, name = parts[0], parts[1]
            room = self.env.ROOM.getByName(name)
            try:
                if op == "enter":
                    return Response.json(await room.enter())
                if op == "slow":
                    return Response(await room.slow(float(parts[2])))
                if op == "impatient":  # give up after 50 ms; the object's event goes on
                    try:
                        await asyncio.wait_for(room.slow(0.3), 0.05)
                    except TimeoutError:
                        return Response("gave up")
                if op == "get":
                    return Response.json(await room.get(parts[2]))
                if op == "vault-slow":
                    return Response(await self.env.VAULT.getByName(name).slow(float(parts[2])))
                if op == "vault-count":
                    return Response.json(await self.env.VAULT.getByName(name).count())
            except Exception as exc:
                return Response(f"{{type(exc).__name__}}: {{exc}}", status=502)
            return Response("no such route", status=404)
"""

BACK = """
    import asyncio
    from workers import DurableObject, Response, WorkerEntrypoint

    class Vault(DurableObject):
        async def slow(self, seconds):
            await asyncio.sleep(seconds)
            return "done"

        async def count(self):
            n = (await self.ctx.storage.get("n") or 0) + 1
            await self.ctx.storage.put("n", n)
            return n

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("back")
"""


def app(version: str = "v1") -> dict[str, str]:
    return {"wrangler_like.toml": CONFIG, "front.py": FRONT.format(version=version), "back.py": BACK}


def pids(server: Any) -> dict[str, int]:
    return {w["name"]: w["pid"] for w in server.api("GET", "/workers")["result"]}


def get_in_thread(server: Any, path: str) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    out: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", server.get(path, timeout=20)))
    thread.start()
    return thread, out


def stored(server: Any, name: str, key: str) -> Any:
    """A key of a Room, read through the control API (it does not wait for the input gate)."""
    keys = server.api("GET", f"/durable_objects/namespaces/ROOM/objects/{name}")["result"]["keys"]
    return next((k["value"] for k in keys if k["key"] == key), None)


def wait_until(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_own_objects_are_called_in_place_and_still_listed_by_the_host(dev: Any) -> None:
    s = dev(app())
    first = s.get("/enter/lobby").json()
    assert first["n"] == 1 and first["pid"] == pids(s)["front"]
    assert s.get("/enter/lobby").json() == {**first, "n": 2, "calls": 2}  # one live instance
    # the host's index has the object before its first call returned (written, not batched)
    objects = s.api("GET", "/durable_objects/namespaces/ROOM/objects")["result"]
    assert [o["name"] for o in objects] == ["lobby"]
    shown = s.api("GET", "/durable_objects/namespaces/ROOM/objects/lobby")["result"]
    assert {"key": "n", "value": 2}.items() <= shown["keys"][0].items()


def test_own_isolate_sigkilled_mid_call_then_the_object_comes_back(dev: Any) -> None:
    s = dev(app())
    assert s.get("/enter/k").json()["n"] == 1
    thread, out = get_in_thread(s, "/slow/k/5")
    assert wait_until(lambda: stored(s, "k", "slow") == "started")
    os.kill(pids(s)["front"], signal.SIGKILL)
    thread.join(15)
    r = out["r"]
    assert r.status_code == 503 and "front" in r.text and "SIGKILL" in r.text, r.text
    after = s.get("/enter/k").json()  # a new isolate, a new instance, the same storage
    assert after["n"] == 2 and after["calls"] == 1
    assert s.get("/get/k/slow").json() == "started"


def test_other_workers_isolate_sigkilled_mid_call_names_the_object(dev: Any) -> None:
    s = dev(app())
    assert s.get("/vault-count/safe").json() == 1
    thread, out = get_in_thread(s, "/vault-slow/safe/5")
    time.sleep(0.5)
    os.kill(pids(s)["back"], signal.SIGKILL)
    thread.join(15)
    r = out["r"]
    assert r.status_code == 502, r.text
    assert "Durable Object Vault 'safe'" in r.text and "SIGKILL" in r.text, r.text
    assert "next call re-creates" in r.text
    assert s.get("/vault-count/safe").json() == 2  # re-created, storage intact


def test_reload_drops_the_old_instances_and_runs_the_new_code(dev: Any) -> None:
    s = dev(app("v1"))
    before = s.get("/enter/r").json()
    assert before["version"] == "v1"
    (s.cwd / "front.py").write_text(__import__("textwrap").dedent(FRONT.format(version="v2")))
    def probe() -> Any:
        r = s.get("/enter/r")  # requests in flight during the reload finish on the old code
        assert r.status_code == 200, r.text
        return r.json() if r.json()["version"] == "v2" else None

    after = wait_until(probe, timeout=20)
    assert after, "the Worker was not reloaded"
    assert after["pid"] != before["pid"] and after["calls"] == 1  # a fresh instance
    assert after["n"] >= 2  # on the stored count


def test_evicted_object_is_rebuilt_on_the_next_call(dev: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("EDGELET_DO_IDLE_TIMEOUT", "0.2")
    s = dev(app())
    assert s.get("/enter/e").json()["calls"] == 1
    assert s.get("/enter/e").json()["calls"] == 2
    time.sleep(0.8)
    again = s.get("/enter/e").json()
    assert again["calls"] == 1 and again["n"] == 3  # a new instance on the same storage


def test_a_caller_that_gives_up_does_not_cut_the_objects_event_short(dev: Any) -> None:
    s = dev(app())
    assert s.get("/impatient/p").text == "gave up"
    assert wait_until(lambda: s.get("/get/p/slow").json() == "finished", timeout=5)
