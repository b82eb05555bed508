"""A consumer whose script does not load (an edit half done under `edgelet dev`) must not
eat the queue: every batch used to count as a failed attempt, so within a second each
message sent meanwhile was moved to the dead-letter queue (or dropped without one). Now
such a batch is put back uncounted and delivered once the script loads again."""

from __future__ import annotations

import time
from typing import Any

CONSUMER = '''
from workers import WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def queue(self, batch, env, ctx):
        for m in batch.messages:
            print(f"consumed {m.body} attempts={m.attempts}")
'''

APP = {
    "wrangler_like.toml": """
[[workers]]
name = "web"
main = "web.py"
queues.producers = [{ binding = "JOBS", queue = "jobs" }]

[[workers]]
name = "back"
main = "back.py"

[[workers.queues.consumers]]
queue = "jobs"
max_batch_size = 5
max_batch_timeout = 0
max_retries = 0
dead_letter_queue = "jobs-dlq"
""",
    "web.py": '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.env.JOBS.send(await request.text(), contentType="text")
        return Response("sent")
''',
    "back.py": CONSUMER,
}


def stats(s: Any, queue: str) -> dict[str, Any]:
    return s.api("GET", f"/queues/{queue}")["result"]


def test_messages_wait_for_a_consumer_that_does_not_load(dev: Any) -> None:
    s = dev(APP)
    assert s.post("/", content="before").text == "sent"
    s.wait_for_log("consumed before attempts=1", 10)

    (s.cwd / "back.py").write_text(CONSUMER + "\ndef broken(:\n")
    s.wait_for_log("SyntaxError", 15)
    for n in range(3):
        assert s.post("/", content=f"while-broken-{n}").text == "sent"
    s.wait_for_log("does not load, so its", 10)
    time.sleep(5)  # two retry periods, and any number of max_retries' worth of deliveries
    jobs = stats(s, "jobs")
    assert (jobs["backlog"], jobs["dead"], stats(s, "jobs-dlq")["backlog"]) == (3, 0, 0), jobs
    # the load failure is said once per broken spell, not per retry, and costs no attempt:
    # no delivery may reach a process that is still importing the broken script (it is
    # SIGKILLed when the import fails, and that used to count as a crash, about 1 run in 4)
    listed = s.api("GET", "/queues/jobs/messages?state=pending")["result"]
    assert all(m["attempts"] == 0 for m in listed), listed
    assert "while handling queues.deliver" not in s.logs(), s.logs()

    (s.cwd / "back.py").write_text(CONSUMER)
    for n in range(3):
        s.wait_for_log(f"consumed while-broken-{n} attempts=1", 15)
    deadline = time.monotonic() + 10
    while stats(s, "jobs")["backlog"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats(s, "jobs")["backlog"] == 0 and stats(s, "jobs")["dead"] == 0
