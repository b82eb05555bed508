"""Queue retries into the dead-letter queue survive SIGKILL of the whole ``edgelet dev``
process group: every message ``send`` acknowledged is delivered (acked by the consumer, or
handed to the dead-letter queue after its retries), none is lost, none dies too early.
"""

from __future__ import annotations

import random
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from crash import APPEND, ARGS, Sender, kill_group, lines, restart

CONFIG = """
    name = "app"
    main = "app.py"
    vars = {{ LOG = "{log}" }}
    queues.producers = [{{ binding = "WORK", queue = "work" }}]
    queues.consumers = [
      {{ queue = "work", max_batch_size = 5, max_batch_timeout = 0.05, max_retries = 2, dead_letter_queue = "dead" }},
      {{ queue = "dead", max_batch_size = 5, max_batch_timeout = 0.05 }},
    ]
"""

APP = """
    import os
    from urllib.parse import urlsplit
    from workers import Response, WorkerEntrypoint
""" + textwrap.indent(APPEND, "    ") + """
    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            _, i, bad = urlsplit(request.url).path.strip("/").split("/")   # /send/<i>/<0|1>
            await self.env.WORK.send({"i": int(i), "bad": bad == "1"})
            return Response("sent")

        async def queue(self, batch, env, ctx):
            for m in batch.messages:
                i = m.body["i"]
                if batch.queue == "dead":
                    append(self.env.LOG, f"dead {i}")
                elif m.body["bad"]:
                    append(self.env.LOG, f"try {i} {m.attempts}")
                    m.retry(delaySeconds=m.attempts - 1)   # 0 s, then 1 s: a backoff
                else:
                    append(self.env.LOG, f"ok {i}")
"""


def outcomes(log: Path) -> tuple[set[int], set[int], dict[int, list[int]]]:
    ok, dead, tries = set(), set(), defaultdict(list)
    for line in lines(log):
        kind, i, *rest = line.split()
        if kind == "ok":
            ok.add(int(i))
        elif kind == "dead":
            dead.add(int(i))
        else:
            tries[int(i)].append(int(rest[0]))
    return ok, dead, tries


@pytest.mark.slow
def test_retries_into_the_dead_letter_queue_lose_nothing_across_kill_9(dev: Any, tmp_path: Path) -> None:
    log = tmp_path / "deliveries.log"
    kills, max_retries = 3, 2
    s = dev({"wrangler_like.toml": CONFIG.format(log=log), "app.py": APP}, *ARGS)
    sender = Sender(lambda i: f"/send/{i}/{i % 3 == 0:d}", pause=0.005)
    acked = sender.acked
    rng = random.Random(9)
    for round_ in range(kills):
        with sender.running(s):
            deadline = time.monotonic() + 20
            # kill once some bad messages are between retries and some already went to "dead",
            # and enough sends were acknowledged (on a loaded machine they come slowly)
            while (len(outcomes(log)[1]) < 2 or not any(2 in t for t in outcomes(log)[2].values())
                   or len(acked) < 5 * (round_ + 1)):
                assert time.monotonic() < deadline, s.logs()[-2000:]
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
            kill_group(s)
        s = restart(dev, s)

    bad = {i for i in acked if i % 3 == 0}
    good = acked - bad
    deadline = time.monotonic() + 40
    while True:
        ok, dead, tries = outcomes(log)
        if good <= ok and bad <= dead:
            break
        assert time.monotonic() < deadline, (
            f"acknowledged messages not delivered: good {sorted(good - ok)[:10]}, "
            f"bad {sorted(bad - dead)[:10]}\n{s.logs()[-2000:]}")
        time.sleep(0.1)
    assert not (dead & good), f"good messages went to the dead-letter queue: {sorted(dead & good)}"
    assert not (ok & bad)
    for i in bad:
        # each was tried until its retries ran out, never given up early; a kill may add a delivery
        assert max(tries[i]) >= max_retries + 1, (i, tries[i])
        assert len(tries[i]) <= max_retries + 1 + kills, (i, tries[i])
    assert len(bad) >= 3 and len(good) >= 6, (len(bad), len(good))
    extra = sum(len(tries[i]) - (max_retries + 1) for i in bad)
    print(f"queues: {len(acked)} acknowledged sends over {kills} kills, {len(good)} acked by the consumer, "
          f"{len(bad)} dead-lettered, {extra} extra deliveries caused by kills")
