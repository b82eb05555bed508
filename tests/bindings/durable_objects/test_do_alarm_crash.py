"""A Durable Object alarm chain survives SIGKILL of the whole ``edgelet dev`` process group.

The object's ``alarm()`` counts one up in storage and sets the next alarm, 30 ms later,
until it reaches the target. Meanwhile a client writes keys to the same object. The
platform is killed (host, fork server and isolates at once) at random moments and started
again on the same state folder: the chain must carry on to the target with no step skipped,
and every write that was acknowledged must be there.
"""

from __future__ import annotations

import json
import random
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crash import APPEND, ARGS, Sender, kill_group, restart

CONFIG = """
    name = "app"
    main = "app.py"
    durable_objects.bindings = [{ name = "CHAIN", class_name = "Chain" }]
"""

APP = """
    import os, time
    from urllib.parse import urlsplit
    from workers import DurableObject, Response, WorkerEntrypoint
""" + textwrap.indent(APPEND, "    ") + """

    class Chain(DurableObject):
        async def begin(self, target, log):
            await self.ctx.storage.put({"target": target, "log": log, "n": 0})
            await self.ctx.storage.setAlarm(int(time.time() * 1000) + 30)

        async def alarm(self, alarm_info=None):
            storage = self.ctx.storage
            n = await storage.get("n") + 1
            await storage.put("n", n)
            append(await storage.get("log"), str(n))  # after the put: a logged step is stored
            if n < await storage.get("target"):
                await storage.setAlarm(int(time.time() * 1000) + 30)

        async def note(self, key):
            await self.ctx.storage.put(f"note:{key}", key)

        async def state(self):
            notes = await self.ctx.storage.list(prefix="note:")
            return {"n": await self.ctx.storage.get("n"), "alarm": await self.ctx.storage.getAlarm(),
                    "notes": sorted(notes.values())}

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            parts = urlsplit(request.url).path.strip("/").split("/")
            chain = self.env.CHAIN.getByName("chain")
            if parts[0] == "begin":
                await chain.begin(int(parts[1]), "/" + "/".join(parts[2:]))
                return Response("begun")
            if parts[0] == "note":
                await chain.note(int(parts[1]))
                return Response("noted")
            return Response.json(await chain.state())
"""


def steps(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


@pytest.mark.slow
def test_alarm_chain_and_acknowledged_writes_survive_kill_9(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "alarms.log"
    # long enough that three kill rounds land inside the chain even on a loaded machine,
    # where the acknowledged writes each round waits for come slowly
    target, kills = 300, 3
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP}, *ARGS)
    assert s.get(f"/begin/{target}{log}").text == "begun"
    sender = Sender(lambda key: f"/note/{key}")
    acked = sender.acked
    rng = random.Random(5)
    for round_ in range(kills):
        with sender.running(s):
            seen = len(steps(log))
            deadline = time.monotonic() + 20
            want = seen + rng.randint(3, 12)
            while len(steps(log)) < want or len(acked) < 10 * (round_ + 1):
                assert time.monotonic() < deadline, f"the chain stalled at {steps(log)[-1:]}:\n{s.logs()[-2000:]}"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))  # land anywhere in an alarm run or between two
            kill_group(s)
        assert len(steps(log)) < target, "the chain ended before the last kill; the test proved nothing"
        s = restart(dev, s)

    deadline = time.monotonic() + 90
    while (state := s.get("/state").json())["n"] != target:
        assert time.monotonic() < deadline, f"the chain stopped at {state['n']}:\n{s.logs()[-2000:]}"
        time.sleep(0.05)
    assert state["alarm"] is None
    ran = steps(log)
    assert sorted(set(ran)) == list(range(1, target + 1)), "a step of the chain was skipped"
    repeats = Counter(ran) - Counter(range(1, target + 1))
    assert sum(repeats.values()) <= kills, f"steps repeated more often than there were kills: {repeats}"
    assert acked and acked <= set(state["notes"]), f"acknowledged writes lost: {sorted(acked - set(state['notes']))}"
    print(f"alarm chain: {target} steps over {kills} kills, {sum(repeats.values())} repeated; "
          f"{len(acked)} acknowledged writes, all kept")
    # the objects' index and the object's own file agree after all the kills
    listing = s.api("GET", "/durable_objects/namespaces/CHAIN/objects")
    assert listing["success"] and len(listing["result"]) == 1, json.dumps(listing)[:500]
