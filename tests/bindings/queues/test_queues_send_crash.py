"""SIGKILL while sendBatch-es and deliveries interleave at full speed: the path where the
sends of one channel read are stored in one commit that also takes the batches they made due,
and a delivery slot records its outcome in the commit that takes its next batch.

Checked over three kills of the whole process group: every message of every acknowledged
send is delivered; a sendBatch is stored whole or not at all (a send the kill cut off has all
of its messages delivered or none); a message whose ack was committed before a kill is never
delivered again; and no message is delivered more often than once plus once per kill.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from crash import APPEND, ARGS, Sender, kill_group, lines, restart

from edgelet.bindings.queues.storage import ACKED, QueueStore

CONFIG = """
    name = "app"
    main = "app.py"
    vars = {{ LOG = "{log}", BEGUN = "{begun}" }}
    queues.producers = [{{ binding = "WORK", queue = "work" }}]
    queues.consumers = [{{ queue = "work", max_batch_size = 10, max_batch_timeout = 0.05, max_concurrency = 2 }}]
"""

APP = """
    import asyncio, os
    from workers import Response, WorkerEntrypoint
""" + APPEND.replace("\n", "\n    ") + """
    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            i = int(request.url.rsplit("/", 1)[1])   # /send/<i>: messages i*10 .. i*10+9
            await self.env.WORK.sendBatch([{"body": i * 10 + k} for k in range(10)])
            return Response("sent")

        async def queue(self, batch):
            append(self.env.BEGUN, "batch")
            await asyncio.sleep(0.05)  # slower than the senders: batches are in flight at each kill
            append(self.env.LOG, " ".join(f"{m.body}:{m.id}" for m in batch.messages))
"""

SENDERS = 3
#: numbers of different senders never meet
SPAN = 100_000


def delivered(log: Path) -> list[tuple[int, str]]:
    return [(int(body), mid) for line in lines(log) for body, mid in (m.split(":") for m in line.split())]


def stored(state: Path) -> dict[str, Any]:
    """The queue's counts as the killed platform left them on disk."""
    db = sqlite3.connect(state / "queues.sqlite3")
    try:
        return QueueStore(db, read_only=True).summary("work", time.time())
    finally:
        db.close()


def acked_ids(state: Path) -> set[str]:
    """Ids of the messages whose ack is committed (the store keeps the last 1,000)."""
    db = sqlite3.connect(state / "queues.sqlite3")
    try:
        return {m[0] for m in QueueStore(db, read_only=True).messages("work", ACKED)}
    finally:
        db.close()


@pytest.mark.slow
def test_sends_and_deliveries_in_shared_commits_lose_nothing_across_kill_9(dev: Any, tmp_path: Path) -> None:
    log, begun = tmp_path / "deliveries.log", tmp_path / "begun.log"
    s = dev({"wrangler_like.toml": CONFIG.format(log=log, begun=begun), "app.py": APP}, *ARGS)
    senders = [Sender(lambda i, base=n * SPAN: f"/send/{base + i}") for n in range(SENDERS)]
    rng = random.Random(20)
    kills, in_flight = 3, 0
    for round_ in range(kills):
        seen = len(delivered(log))
        with ExitStack() as stack:
            for sender in senders:
                stack.enter_context(sender.running(s))
            deadline = time.monotonic() + 20
            # the kill lands mid-stream, while a handler has begun a batch it has not finished
            while len(delivered(log)) < seen + 100 or len(lines(begun)) <= len(lines(log)):
                assert time.monotonic() < deadline, s.logs()[-2000:]
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.02))
            kill_group(s)
        committed = acked_ids(tmp_path / "state")
        in_flight += stored(tmp_path / "state")["in_flight"]
        before = len(delivered(log))
        s = restart(dev, s)
        time.sleep(0.5)  # what was in flight at the kill is delivered again now
        again = {mid for _, mid in delivered(log)[before:]} & committed
        assert not again, f"round {round_ + 1}: {len(again)} message(s) acked before the kill were delivered again"

    # a Sender counts its own requests; request i of sender n sent /send/<n * SPAN + i>
    acked_sends = {n * SPAN + i for n, x in enumerate(senders) for i in x.acked}
    cut_sends = {n * SPAN + i for n, x in enumerate(senders) for i in x.cut}
    want = {i * 10 + k for i in acked_sends for k in range(10)}
    deadline = time.monotonic() + 30
    while not want <= {body for body, _ in delivered(log)}:
        assert time.monotonic() < deadline, (
            f"messages of acknowledged sends never delivered: "
            f"{sorted(want - {b for b, _ in delivered(log)})[:10]}\n{s.logs()[-3000:]}\n"
            f"{s.get('/cdn-cgi/edgelet/api/queues').text}")
        time.sleep(0.05)
    time.sleep(0.3)
    found = delivered(log)
    bodies = {body for body, _ in found}
    for i in cut_sends:  # a sendBatch the kill cut off: stored whole or not at all
        got = {i * 10 + k for k in range(10)} & bodies
        assert len(got) in (0, 10), f"send {i} was cut by a kill and only {sorted(got)} were delivered"
    ids_per_body: dict[int, set[str]] = {}
    for body, mid in found:
        ids_per_body.setdefault(body, set()).add(mid)
    assert all(len(ids) == 1 for ids in ids_per_body.values()), "a message was stored twice"
    most = max(Counter(body for body, _ in found).values())
    assert most <= 1 + kills, f"a message was delivered {most} times over {kills} kills"
    assert len(acked_sends) >= 20, len(acked_sends)
    assert in_flight > 0, "no kill landed while a batch was being delivered; the test checked too little"
    print(f"queues: {len(acked_sends)} acknowledged sendBatch-es ({len(want)} messages) over {kills} kills, "
          f"{len(cut_sends)} cut, {in_flight} in flight at the kills, "
          f"{len(found) - len(bodies)} extra deliveries caused by kills")
