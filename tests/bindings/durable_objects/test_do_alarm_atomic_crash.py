"""A Durable Object's data and its alarm commit together: a SIGKILL of the whole platform
between ``put`` and ``setAlarm`` (or inside ``deleteAll``, which deletes data then alarm)
leaves both or neither, never data without its alarm nor an alarm on an emptied object.

The object itself kills the platform's process group at the exact moment between the two
calls, so every round lands in the window (a kill from outside would hit it by luck only).
The state folder survives; a new ``edgelet dev`` on it must show consistent pairs, and an
alarm whose write was acknowledged must still fire after the restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from crash import APPEND, ARGS, Sender, kill_group, lines, restart, wait_until

CONFIG = """
    name = "app"
    main = "app.py"
    compatibility_date = "2026-03-01"
    durable_objects.bindings = [{ name = "PAIR", class_name = "Pair" }]
"""

APP = """
    import os, signal, time
    from urllib.parse import urlsplit
    from workers import DurableObject, Response, WorkerEntrypoint
""" + "\n".join("    " + line for line in APPEND.splitlines()) + """

    def die():
        # the whole platform, at once: host, fork server, isolates (kill_group's signal)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    class Pair(DurableObject):
        async def seed(self, version, when):
            await self.ctx.storage.put("v", version)
            await self.ctx.storage.setAlarm(when)

        async def put_then_alarm(self, version, when):
            self.ctx.storage.put("v", version)
            die()
            self.ctx.storage.setAlarm(when)

        async def alarm_then_put(self, version, when):
            self.ctx.storage.setAlarm(when)
            die()
            self.ctx.storage.put("v", version)

        async def delete_all(self):
            self.ctx.storage.deleteAll()
            die()

        async def acknowledged(self, version, when, log):
            await self.ctx.storage.put({"v": version, "log": log})
            await self.ctx.storage.setAlarm(when)  # resolves once committed
            die()

        async def cycle(self, i, base):
            # even: a new pair (v=i, alarm base+i); odd: everything gone
            if i % 2:
                self.ctx.storage.deleteAll()
            else:
                self.ctx.storage.put("v", i)
                self.ctx.storage.setAlarm(base + i)

        async def state(self):
            return [await self.ctx.storage.get("v"), await self.ctx.storage.getAlarm()]

        async def alarm(self, alarm_info=None):
            append(await self.ctx.storage.get("log"), f"{self.ctx.id.name} {await self.ctx.storage.get('v')}")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            parts = urlsplit(request.url).path.strip("/").split("/")
            obj = self.env.PAIR.getByName(parts[1])
            args = [int(p) for p in parts[2:4]]
            if parts[0] == "ack":
                args.append("/" + "/".join(parts[4:]))
            method = {"seed": obj.seed, "pa": obj.put_then_alarm, "ap": obj.alarm_then_put,
                      "da": obj.delete_all, "ack": obj.acknowledged, "state": obj.state,
                      "cycle": obj.cycle}[parts[0]]
            return Response.json(await method(*args))
"""

HOUR_MS = 3_600_000


def call_and_die(s: Any, path: str) -> None:
    """A request whose object kills the platform mid-way: the connection drops, the
    platform's process group is gone."""
    with pytest.raises(httpx.HTTPError):
        httpx.get(s.url + path, timeout=30)
    s.proc.wait(10)


@pytest.mark.slow
def test_data_and_alarm_survive_a_kill_between_them_together_or_not_at_all(
        dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    far = int(time.time() * 1000) + HOUR_MS
    rounds = [("pa", "a"), ("ap", "b"), ("da", "c"), ("pa", "d"), ("ap", "e"), ("da", "f")]
    for _, name in rounds:  # every object starts with a committed pair (v=0, alarm far)
        assert s.get(f"/seed/{name}/0/{far}").json() is None
    for mode, name in rounds:
        path = f"/{mode}/{name}" + ("" if mode == "da" else f"/1/{far + 60_000}")
        call_and_die(s, path)
        s = restart(dev, s)
        version, alarm = s.get(f"/state/{name}").json()
        # both or neither: the old pair, the new pair, or (deleteAll) nothing at all
        assert (version, alarm) in [(0, far), (1, far + 60_000), (None, None)], (
            f"{mode} on {name}: after the kill the object holds v={version!r} with alarm "
            f"{alarm!r}: data and alarm were committed separately")

    # an alarm acknowledged just before the kill is kept, and fires after the restart
    log = tmp_path / "alarms.log"
    call_and_die(s, f"/ack/g/7/{int(time.time() * 1000) + 300}{log}")
    s = restart(dev, s)
    assert wait_until(lambda: lines(log), timeout=20,
                      what=lambda: f"the acknowledged alarm never fired:\n{s.logs()[-2000:]}") == ["g 7"]
    assert s.get("/state/g").json() == [7, None]


@pytest.mark.slow
def test_random_kills_never_leave_data_without_its_alarm_or_an_alarm_without_data(
        dev: Any) -> None:
    """The same from outside: a client keeps replacing objects' pairs and erasing them while
    the platform is SIGKILLed at random moments."""
    import random
    rng = random.Random(7)
    base = int(time.time() * 1000) + HOUR_MS
    names = [f"r{k}" for k in range(4)]
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    sender = Sender(lambda i: f"/cycle/{names[i % len(names)]}/{i // len(names)}/{base}")
    for _ in range(4):
        want = len(sender.acked) + rng.randint(5, 30)
        with sender.running(s):
            wait_until(lambda want=want: len(sender.acked) >= want, timeout=20,
                       what="the writes stopped being acknowledged")
            time.sleep(rng.uniform(0, 0.05))
            kill_group(s)
        s = restart(dev, s)
        for name in names:
            version, alarm = s.get(f"/state/{name}").json()
            assert (version is None and alarm is None) or alarm == base + version, (
                f"{name} holds v={version!r} with alarm {alarm!r} after a kill")
