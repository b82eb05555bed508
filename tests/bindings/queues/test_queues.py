"""Queues: producing, batching, acks/retries, dead-lettering, limits, durability, API and CLI.

Most tests share one real `edgelet dev` (module fixture) and tell their messages apart by a
tag in the body; timing rules (batch timeout, delays, retry delays) run in-process on a
virtual clock so they take no wall time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import DevServer, free_port, write_app
from crash import restart

from edgelet.testing import Platform

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "prod"
        main = "prod.py"
        queues.producers = [{ binding = "JOBS", queue = "jobs" }, { binding = "PARKED", queue = "parked" }]

        [[workers]]
        name = "cons"
        main = "cons.py"
        queues.producers = [{ binding = "JOBS", queue = "jobs" }]
        queues.consumers = [
            { queue = "jobs", max_batch_size = 10, max_batch_timeout = 0.2, max_retries = 2, dead_letter_queue = "jobs-dlq", retry_delay = 0 },
            { queue = "jobs-dlq", max_batch_timeout = 0.1 },
        ]
    """,
    "prod.py": """
        import datetime
        from workers import Response, WorkerEntrypoint

        def _error(exc):
            return f"{type(exc).__name__}: {exc}"

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                path = request.url.split("/", 3)[3].split("?")[0]
                if path == "send":
                    data = await request.json()
                    try:
                        await self.env.JOBS.send(data["body"], **data.get("options", {}))
                    except Exception as exc:
                        return Response(_error(exc), status=400)
                    return Response("sent")
                if path == "send-batch":
                    data = await request.json()
                    try:
                        await self.env.JOBS.sendBatch(data["messages"], data.get("options"))
                    except Exception as exc:
                        return Response(_error(exc), status=400)
                    return Response("sent")
                if path == "park":
                    n = int(request.url.split("n=")[1])
                    await self.env.PARKED.send_batch([{"body": i} for i in range(n)])
                    return Response("parked")
                if path == "types":
                    tag = request.url.split("tag=")[1]
                    await self.env.JOBS.send({"tag": tag, "kind": "json"})
                    await self.env.JOBS.send(f"text {tag}", contentType="text")
                    await self.env.JOBS.send(tag.encode(), content_type="bytes")
                    await self.env.JOBS.send({"tag": tag, "kind": "pickle", "set": {1, 2},
                                              "when": datetime.date(2024, 1, 2)}, {"contentType": "pickle"})
                    return Response("sent")
                if path == "bad":
                    tag = request.url.split("tag=")[1]
                    ok = {"body": {"tag": tag}}
                    cases = {
                        "too_big": lambda: self.env.JOBS.send("x" * 200_000, contentType="text"),
                        "batch_101": lambda: self.env.JOBS.sendBatch([ok] * 101),
                        "batch_bytes": lambda: self.env.JOBS.sendBatch(
                            [{"body": "y" * 100_000, "contentType": "text"}] * 3),
                        "not_json": lambda: self.env.JOBS.send({"tag": tag, "s": {1, 2}}),
                        "partial_batch": lambda: self.env.JOBS.sendBatch([ok] * 5 + [{"body": {1}}]),
                        "unknown_type": lambda: self.env.JOBS.send(tag, contentType="yaml"),
                        "bad_delay": lambda: self.env.JOBS.send(ok, delaySeconds=50_000),
                        "text_not_str": lambda: self.env.JOBS.send(5, contentType="text"),
                        "typo_option": lambda: self.env.JOBS.send(ok, delay=5),
                        "none_body": lambda: self.env.JOBS.send(None),
                    }
                    out = {}
                    for name, call in cases.items():
                        try:
                            await call()
                            out[name] = "accepted"
                        except Exception as exc:
                            out[name] = _error(exc)
                    return Response.json(out)
                return Response("not found", status=404)
    """,
    "cons.py": """
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def queue(self, batch, env, ctx):
                for m in batch.messages:
                    body = m.body
                    mode = body.get("mode") if isinstance(body, dict) else None
                    print(f"RECV {batch.queue} {m.id} attempts={m.attempts} "
                          f"type={type(body).__name__} body={body!r} ts={m.timestamp.year}")
                    if batch.queue == "jobs-dlq":
                        continue
                    if mode == "fail":
                        raise RuntimeError("handler failed on purpose")
                    if mode == "fail-once" and m.attempts == 1:
                        raise RuntimeError("first attempt fails")
                    if mode == "ack":
                        m.ack()
                    if mode == "double-ack":
                        m.ack()
                        m.ack()
                    if mode == "retry-once" and m.attempts == 1:
                        m.retry()
                    if mode == "retry-then-ack" and m.attempts == 1:
                        m.retry()
                        m.ack()
                    if mode == "retry-all-once" and m.attempts == 1:
                        batch.retryAll()
                    if mode == "crash-once" and m.attempts == 1:
                        import os
                        os._exit(3)
                    if mode == "forward":
                        await env.JOBS.send({"tag": body["tag"], "mode": "forwarded"})
    """,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = write_app(tmp_path_factory.mktemp("queues"), APP)
    server = DevServer(folder, [], free_port()).start()
    yield server
    server.stop()


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def received(server: DevServer, tag: str, queue: str = "jobs") -> list[dict[str, Any]]:
    """RECV lines of the consumer for messages carrying ``tag``, in order."""
    out = []
    for m in re.finditer(rf"RECV {re.escape(queue)} (\w+) attempts=(\d+) type=(\w+) body=(.*) ts=(\d+)",
                         server.logs()):
        if tag in m.group(4):
            out.append({"id": m.group(1), "attempts": int(m.group(2)), "type": m.group(3),
                        "body": m.group(4)})
    return out


def queue_info(server: DevServer, name: str) -> dict[str, Any]:
    envelope = server.api("GET", "/queues")
    assert envelope["success"], envelope
    return next(q for q in envelope["result"] if q["name"] == name)


def tag() -> str:
    return uuid.uuid4().hex[:10]


# -- producing and consuming over real HTTP ----------------------------------------------------
def test_every_content_type_reaches_the_consumer_as_sent(app: DevServer) -> None:
    t = tag()
    assert app.get(f"/types?tag={t}").status_code == 200
    got = wait_for(lambda: len(received(app, t)) >= 4 and received(app, t), what="4 messages")
    by_type = {g["type"]: g["body"] for g in got}
    assert any(g["body"] == f"{{'tag': '{t}', 'kind': 'json'}}" for g in got)
    assert by_type["str"] == f"'text {t}'"
    assert by_type["bytes"] == repr(t.encode())
    pickled = next(g["body"] for g in got if "pickle" in g["body"])
    assert "{1, 2}" in pickled and "datetime.date(2024, 1, 2)" in pickled  # unpickled in the consumer
    assert all(g["attempts"] == 1 for g in got)
    assert len({g["id"] for g in got}) == 4 and all(re.fullmatch(r"[0-9a-f]{32}", g["id"]) for g in got)


def test_bad_input_raises_in_the_worker_and_enqueues_nothing(app: DevServer) -> None:
    t = tag()
    before = queue_info(app, "jobs")
    result = app.get(f"/bad?tag={t}").json()
    assert result["too_big"].startswith("QueueLimitError") and "200000 bytes" in result["too_big"] \
        and "128000" in result["too_big"]
    assert "at most 100 messages, got 101" in result["batch_101"]
    assert "300000 bytes" in result["batch_bytes"] and "256 KB" in result["batch_bytes"]
    assert result["not_json"].startswith("TypeError") and "'dict'" in result["not_json"] \
        and "JSON-serializable" in result["not_json"] and "set" in result["not_json"]
    assert result["partial_batch"].startswith("TypeError") and "message 5" in result["partial_batch"]
    assert result["unknown_type"].startswith("ValueError") and "'yaml'" in result["unknown_type"]
    for allowed in ("'json'", "'text'", "'bytes'", "'pickle'"):
        assert allowed in result["unknown_type"]
    assert "between 0 and 43200" in result["bad_delay"]
    assert "needs a str body, got int" in result["text_not_str"]
    assert "unknown option 'delay'" in result["typo_option"]
    assert result["none_body"].startswith("TypeError")
    time.sleep(0.4)  # longer than the batch timeout: anything enqueued would have arrived
    after = queue_info(app, "jobs")
    assert received(app, t) == []
    assert after["acked"] == before["acked"] and after["backlog"] == 0


def test_failing_handler_sends_message_to_dlq_after_max_retries_plus_one_attempts(app: DevServer) -> None:
    t = tag()
    assert app.post("/send", json={"body": {"tag": t, "mode": "fail"}}).text == "sent"
    dlq = wait_for(lambda: received(app, t, "jobs-dlq"), what="the dead-letter delivery")
    time.sleep(0.5)  # would a 4th attempt come?
    attempts = [g["attempts"] for g in received(app, t)]
    assert attempts == [1, 2, 3]  # max_retries = 2
    assert len(received(app, t, "jobs-dlq")) == 1
    assert dlq[0]["attempts"] == 1 and dlq[0]["id"] == received(app, t)[0]["id"]
    logs = app.logs()
    assert f"moved message {dlq[0]['id']} to dead-letter queue jobs-dlq after 3 failed attempts" in logs
    assert "Uncaught exception in queue handler for jobs" in logs
    assert re.search(r"QUEUE jobs 0/1 \(\d+\.\d ms\)", logs)
    info = queue_info(app, "jobs")
    assert info["dead"] >= 1 and info["dead_letter_queue"] == "jobs-dlq"


def test_acking_twice_is_harmless_and_counted_once(app: DevServer) -> None:
    t = tag()
    before = queue_info(app, "jobs")["acked"]
    msgs = [{"body": {"tag": t, "mode": "double-ack", "n": i}} for i in range(3)]
    assert app.post("/send-batch", json={"messages": msgs}).text == "sent"
    wait_for(lambda: queue_info(app, "jobs")["acked"] >= before + 3, what="3 acks")
    time.sleep(0.3)
    assert queue_info(app, "jobs")["acked"] == before + 3
    assert [g["attempts"] for g in received(app, t)] == [1, 1, 1]
    assert "QUEUE jobs 3/3" in app.logs()


def test_explicit_ack_survives_a_handler_that_raises_later(app: DevServer) -> None:
    t = tag()
    msgs = [{"body": {"tag": t, "mode": "ack", "n": 1}}, {"body": {"tag": t, "mode": "fail-once", "n": 2}}]
    app.post("/send-batch", json={"messages": msgs})
    wait_for(lambda: len(received(app, t)) >= 3, what="the retry")
    time.sleep(0.3)
    got = received(app, t)
    acked = [g for g in got if "'n': 1" in g["body"]]
    failing = [g for g in got if "'n': 2" in g["body"]]
    assert [g["attempts"] for g in acked] == [1]  # acked before the raise: never redelivered
    assert [g["attempts"] for g in failing] == [1, 2]


def test_retry_retry_all_and_ack_after_retry(app: DevServer) -> None:
    t = tag()
    msgs = [{"body": {"tag": t, "mode": m}} for m in ("retry-once", "retry-then-ack", "retry-all-once")]
    for i, m in enumerate(msgs):  # one at a time, so retryAll touches only its own message
        app.post("/send-batch", json={"messages": [m]})
        wait_for(lambda: len(received(app, t)) >= 2 * (i + 1), what=f"{m['body']['mode']} retried")
    time.sleep(0.3)
    got = received(app, t)
    for mode in ("retry-once", "retry-then-ack", "retry-all-once"):
        assert [g["attempts"] for g in got if f"'{mode}'" in g["body"]] == [1, 2], mode
    retried_then_acked = next(g["id"] for g in got if "'retry-then-ack'" in g["body"])
    assert f"ack() on message {retried_then_acked} after retry() has no effect" in app.logs()


def test_consumer_isolate_crash_retries_the_batch(app: DevServer) -> None:
    t = tag()
    app.post("/send", json={"body": {"tag": t, "mode": "crash-once"}})
    wait_for(lambda: len(received(app, t)) >= 2, what="redelivery after the crash")
    assert [g["attempts"] for g in received(app, t)] == [1, 2]
    assert "delivering a batch of 1 message(s) to Worker 'cons' failed" in app.logs()


def test_consumer_can_produce_and_delay_seconds_is_honoured(app: DevServer) -> None:
    t = tag()
    started = time.monotonic()
    app.post("/send", json={"body": {"tag": t, "mode": "forward"}, "options": {"delaySeconds": 1}})
    time.sleep(0.5)
    assert received(app, t) == []  # still delayed
    wait_for(lambda: len(received(app, t)) >= 2, what="the forwarded message")
    assert time.monotonic() - started >= 1.0
    assert "'forwarded'" in received(app, t)[1]["body"]


def test_queue_without_consumer_keeps_a_backlog(app: DevServer) -> None:
    assert app.get("/park?n=7").status_code == 200
    info = queue_info(app, "parked")
    assert info["consumer"] is None and info["producers"] == ["prod"]
    assert info["backlog"] == 7 and info["in_flight"] == 0
    assert info["oldest_age_s"] is not None and info["oldest_age_s"] >= 0
    jobs = queue_info(app, "jobs")
    assert jobs["consumer"] == "cons" and jobs["producers"] == ["cons", "prod"]
    assert jobs["dead_letter_queue"] == "jobs-dlq" and isinstance(jobs["dead_letter_backlog"], int)


def test_control_api_sends_and_reports_clear_errors(app: DevServer) -> None:
    t = tag()
    res = app.api("POST", "/queues/jobs/messages", json={"body": f"api {t}", "content_type": "text"})
    assert res["success"] and re.fullmatch(r"[0-9a-f]{32}", res["result"]["id"])
    res = app.api("POST", "/queues/jobs/messages", json={"body": {"tag": t}, "delay_seconds": 0})
    assert res["success"]
    got = wait_for(lambda: len(received(app, t)) >= 2 and received(app, t), what="API messages")
    assert {g["type"] for g in got} == {"str", "dict"}
    missing = app.api("POST", "/queues/nope/messages", json={"body": 1})
    assert not missing["success"] and "no queue named 'nope'" in missing["errors"][0]["message"]
    assert "jobs" in missing["errors"][0]["message"]
    bad = app.api("POST", "/queues/jobs/messages", json={"body": "x", "content_type": "pickle"})
    assert not bad["success"] and "use 'json' or 'text'" in bad["errors"][0]["message"]
    big = app.api("POST", "/queues/jobs/messages", json={"body": "x" * 130_000, "content_type": "text"})
    assert not big["success"] and "128000" in big["errors"][0]["message"]
    batch = app.api("POST", "/queues/parked/messages/batch", json={"messages": [{"body": 1}, {"body": 2}]})
    assert batch["success"] and len(batch["result"]["ids"]) == 2


def test_cli_lists_and_sends(app: DevServer) -> None:
    t = tag()
    cli = [sys.executable, "-m", "edgelet.cli", "queues"]
    sent = subprocess.run([*cli, "send", "jobs", json.dumps({"tag": t}), "--port", str(app.port)],
                          capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert "Sent message" in sent.stdout
    wait_for(lambda: received(app, t), what="the CLI message")
    listed = subprocess.run([*cli, "list", "--json", "--port", str(app.port)],
                            capture_output=True, text=True, timeout=30)
    rows = {q["name"]: q for q in json.loads(listed.stdout)}
    assert {"jobs", "jobs-dlq", "parked"} <= set(rows) and rows["jobs"]["consumer"] == "cons"
    table = subprocess.run([*cli, "list", "--port", str(app.port)], capture_output=True, text=True,
                           timeout=30).stdout
    assert table.splitlines()[0].split()[:4] == ["NAME", "PRODUCERS", "CONSUMER", "BACKLOG"]
    assert any(line.startswith("jobs ") and "jobs-dlq" in line for line in table.splitlines())
    bad = subprocess.run([*cli, "send", "jobs", "not json", "--port", str(app.port)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--content-type text" in bad.stderr


# -- durability: kill -9 in the middle of delivery -------------------------------------------
DURABLE = {
    "wrangler_like.toml": """
        name = "app"
        main = "app.py"
        queues.producers = [{ binding = "Q", queue = "work" }, { binding = "PARKED", queue = "parked" }]
        queues.consumers = [{ queue = "work", max_batch_size = 10, max_batch_timeout = 0.05, max_concurrency = 1 }]
    """,
    "app.py": """
        import asyncio, os
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                n = int(request.url.split("n=")[1])
                for start in range(0, n, 100):
                    await self.env.Q.sendBatch([{"body": i} for i in range(start, min(n, start + 100))])
                await self.env.PARKED.send({"parked": True})
                return Response("filled")

            async def queue(self, batch):
                await asyncio.sleep(0.03)  # a slow consumer: the kill lands mid-queue
                fd = os.open(self.env.OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, "".join(m.id + "\\n" for m in batch.messages).encode())
                os.close(fd)
    """,
}


def test_accepted_messages_survive_kill_9_and_acked_ones_are_never_redelivered(dev: Any, tmp_path: Path) -> None:
    out = tmp_path / "delivered.txt"
    files = dict(DURABLE)
    files["wrangler_like.toml"] = textwrap.dedent(files["wrangler_like.toml"]) + f'vars = {{ OUT = "{out}" }}\n'
    s = dev(files)
    assert s.get("/?n=300").text == "filled"
    wait_for(lambda: out.exists() and len(out.read_text().split()) >= 60, what="some deliveries")
    s.kill()
    from edgelet.bindings.queues.storage import QueueStore
    db = sqlite3.connect(tmp_path / ".edgelet" / "state" / "queues.sqlite3")
    rows = [(m[0], m[5]) for m in QueueStore(db, read_only=True).messages("work", None)]
    db.close()
    assert len(rows) == 300  # every accepted message was stored before send returned
    acked_before = {mid for mid, state in rows if state == 2}
    all_ids = {mid for mid, _ in rows}
    assert 0 < len(acked_before) < 300
    seen_before = len(out.read_text().split())
    offline = subprocess.run([sys.executable, "-m", "edgelet.cli", "queues", "list", "--json",
                              "--port", str(s.port)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=30)
    work = next(q for q in json.loads(offline.stdout) if q["name"] == "work")  # read from the state folder
    assert work["acked"] == len(acked_before) and work["backlog"] + work["in_flight"] == 300 - len(acked_before)
    assert "no `edgelet dev` running" in offline.stderr

    s2 = restart(dev, s)
    wait_for(lambda: set(out.read_text().split()) >= all_ids, timeout=20, what="all 300 delivered")
    lines = out.read_text().split()
    after = lines[seen_before:]
    assert not acked_before & set(after), "an acked message was delivered again after restart"
    assert len(after) == len(set(after))
    assert set(lines) == all_ids
    assert queue_info(s2, "parked")["backlog"] == 1  # no consumer: kept across the restart


# -- timing rules on a virtual clock, in-process --------------------------------------------
VIRTUAL = {
    "wrangler_like.toml": """
        name = "w"
        main = "w.py"
        queues.producers = [{ binding = "Q", queue = "q" }, { binding = "LATER", queue = "q", delivery_delay = 30 }]
        queues.consumers = [{ queue = "q", max_batch_size = 3, max_batch_timeout = 5, max_retries = 1, retry_delay = 20 }]
    """,
    "w.py": """
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def queue(self, batch):
                for m in batch.messages:
                    body = m.body if isinstance(m.body, dict) else {}
                    if body.get("retry") and m.attempts == 1:
                        m.retry(delaySeconds=body["retry"])
                    if body.get("raise"):
                        raise ValueError("always fails")
    """,
}


class Virtual:
    """A platform on a virtual clock (``edgelet.testing.Platform``) with the queue handles."""

    def __init__(self, p: Platform) -> None:
        self.p, self.host = p, p.host
        plugin = p.host.plugin("queues")
        self.q = plugin.queue_handle("w", "Q")
        self.later = plugin.queue_handle(None, "LATER")

    async def advance(self, seconds: float) -> None:
        await self.p.advance(dt.timedelta(seconds=seconds))

    async def states(self) -> list[tuple[Any, str, int]]:
        return [(m.body, m.state, m.attempts) for m in await self.q.messages()]


@pytest.fixture
async def virtual(tmp_path: Path) -> Any:
    write_app(tmp_path, VIRTUAL)
    async with Platform(tmp_path / "wrangler_like.toml", clock="virtual") as p:
        yield Virtual(p)


async def test_batch_waits_for_size_or_timeout_on_the_platform_clock(virtual: Virtual) -> None:
    await virtual.q.send({"n": 1})
    await virtual.advance(4)
    assert await virtual.states() == [({"n": 1}, "pending", 0)]
    await virtual.advance(1)  # the oldest has now waited max_batch_timeout
    assert await virtual.states() == [({"n": 1}, "acked", 1)]
    await virtual.q.sendBatch([{"body": {"n": i}} for i in range(2, 5)])
    await virtual.host.wait_idle()  # a full batch (3) goes at once, no time passes
    assert [s for _, s, _ in await virtual.states()] == ["acked"] * 4
    assert [m.body for m in await virtual.q.delivered()] == [{"n": i} for i in range(1, 5)]


async def test_delays_and_retry_delays_use_the_platform_clock(virtual: Virtual) -> None:
    await virtual.q.send({"d": 1}, delaySeconds=100)
    await virtual.later.send({"d": 2})  # delivery_delay = 30 on this binding
    await virtual.q.send({"d": 3, "retry": 60})
    await virtual.advance(5)
    assert await virtual.states() == [({"d": 1}, "pending", 0), ({"d": 2}, "pending", 0),
                                      ({"d": 3, "retry": 60}, "pending", 1)]
    await virtual.advance(30)  # d2 visible at 30, batch timeout 5 later
    assert [s for _, s, _ in await virtual.states()] == ["pending", "acked", "pending"]
    await virtual.advance(35)  # d3 visible again at 65, delivered at 70 (attempt 2)
    assert await virtual.states() == [({"d": 1}, "pending", 0), ({"d": 2}, "acked", 1),
                                      ({"d": 3, "retry": 60}, "acked", 2)]
    await virtual.advance(35)
    assert (await virtual.states())[0] == ({"d": 1}, "acked", 1)


async def test_raising_handler_uses_retry_delay_then_drops_without_dlq(virtual: Virtual,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    await virtual.q.send({"raise": True})
    await virtual.advance(5)
    assert await virtual.states() == [({"raise": True}, "pending", 1)]
    await virtual.advance(19)  # retry_delay = 20 s, then the batch timeout
    assert (await virtual.states())[0][1:] == ("pending", 1)
    await virtual.advance(6)
    assert await virtual.states() == [({"raise": True}, "dead", 2)]  # max_retries = 1
    assert [m.state for m in await virtual.q.messages("dead")] == ["dead"]
    assert "dropped message" in caplog.text and "after 2 failed attempts" in caplog.text
    stats = await virtual.q.stats()
    assert stats.dead == 1 and stats.backlog == 0


async def test_handle_lists_states_and_hides_pickled_bodies(virtual: Virtual) -> None:
    ids = await virtual.q.send_batch([{"body": "t", "contentType": "text"},
                                      {"body": b"\x00\x01", "content_type": "bytes"},
                                      {"body": {1, 2}, "contentType": "pickle"}])
    assert len(ids) == 3
    await virtual.host.wait_idle()  # a full batch: delivered (and unpickled) in the Worker
    listed = await virtual.q.messages()
    assert [(m.id, m.body, m.content_type, m.state) for m in listed] == [
        (ids[0], "t", "text", "acked"), (ids[1], b"\x00\x01", "bytes", "acked"),
        (ids[2], None, "pickle", "acked")]
    assert [m.id for m in await virtual.q.delivered()] == ids
    assert listed[0].timestamp.year >= 2024 and listed[0].attempts == 1
    assert await virtual.q.messages("pending") == []
    with pytest.raises(ValueError, match="unknown message state 'done'"):
        await virtual.q.messages("done")
    with pytest.raises(TypeError, match="JSON-serializable"):
        await virtual.q.send(object())
    with pytest.raises(LookupError, match="no queue producer binding 'NOPE'"):
        virtual.host.plugin("queues").queue_handle("w", "NOPE")  # type: ignore[attr-defined]


CONCURRENT = {
    "wrangler_like.toml": """
        name = "c"
        main = "c.py"
        queues.producers = [{ binding = "Q", queue = "cq" }]
        queues.consumers = [{ queue = "cq", max_batch_size = 1, max_batch_timeout = 0, max_concurrency = 2 }]
    """,
    "c.py": """
        import asyncio
        from workers import WorkerEntrypoint

        running = peak = 0

        class Default(WorkerEntrypoint):
            async def queue(self, batch):
                global running, peak
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.05)
                running -= 1
                print(f"peak={peak}")
    """,
}


async def test_max_concurrency_bounds_batches_in_flight(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    write_app(tmp_path, CONCURRENT)
    async with Platform(tmp_path / "wrangler_like.toml") as p:  # real time
        handle = p.host.plugin("queues").queue_handle("c", "Q")
        with caplog.at_level("INFO"):
            await handle.sendBatch([{"body": i} for i in range(6)])
            for _ in range(200):
                if len(await handle.delivered()) == 6:
                    break
                await asyncio.sleep(0.02)
    peaks = [int(p) for p in re.findall(r"peak=(\d+)", caplog.text)]
    assert len(peaks) == 6 and max(peaks) == 2
    assert caplog.text.count("QUEUE cq 1/1") == 6


def test_the_store_keeps_the_most_recently_acked_messages_and_their_order() -> None:
    from edgelet.bindings.queues.storage import ACKED, ACKED_KEEP, QueueStore
    store = QueueStore(sqlite3.connect(":memory:", isolation_level=None))
    store.insert("q", [(f"m{i}", 0, "json", b"%d" % i, 0.0) for i in range(1500)])
    store.insert("other", [("o", 0, "json", b"o", 0.0)])
    rows = store.take("q", 1.0, 1500).rows()
    # acked in three batches, the newest first by seq: ack order, not seq, decides what stays
    store.settle("q", 2.0, rows[1000:], [], [], None)
    store.settle("q", 3.0, rows[:500], [], [], None)
    store.settle("q", 4.0, rows[500:1000], [], [], None)
    assert len(store.messages("q", ACKED, limit=5000)) == 1500  # trimmed once 1,000 more are acked
    store.trim_acked("q")
    kept = store.messages("q", ACKED, limit=5000)
    assert len(kept) == ACKED_KEEP
    assert [k[0] for k in kept] == [f"m{i}" for i in range(500)] + [f"m{i}" for i in range(500, 1000)]
    assert store.summary("q", 5.0)["acked"] == 1500  # the count is not trimmed
    assert store.summary("other", 5.0)["backlog"] == 1  # other queues are left alone


def test_a_version_1_file_is_moved_to_batch_rows_keeping_order_state_and_the_acked_order() -> None:
    from edgelet.bindings.queues.schema import SCHEMA, V1
    from edgelet.bindings.queues.storage import ACKED, INFLIGHT, PENDING, QueueStore
    from edgelet.state import migrate
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(V1 + "PRAGMA user_version = 1;")
    rows = [(f"m{i}", 1000 + i, "json", b"%d" % i, 100.0 - i) for i in range(3)]
    conn.executemany("INSERT INTO queue_messages (queue, id, timestamp_ms, content_type, body, visible_at)"
                     " VALUES ('q', ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO queue_messages (queue, id, timestamp_ms, content_type, body, visible_at, state,"
                     " attempts) VALUES ('q', ?, 5, 'text', ?, 50.0, ?, 2)",
                     [("p1", b"a", PENDING), ("p2", b"b", PENDING), ("f1", b"c", INFLIGHT)])
    # as an older edgelet left them: acked, visible_at still the send-time value
    conn.execute("UPDATE queue_messages SET state = ?, done_at = 500.0 + seq WHERE id LIKE 'm%'", (ACKED,))
    migrate(conn, SCHEMA)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'queue_messages'").fetchone() is None
    store = QueueStore(conn)
    assert [m[0] for m in store.messages("q", None)] == ["m0", "m1", "m2", "p1", "p2", "f1"]
    assert store.messages("q", PENDING) == [("p1", 5, "text", b"a", 2, PENDING), ("p2", 5, "text", b"b", 2, PENDING)]
    assert store.recover(1000.0) == 1  # the in-flight one is due again
    taken = store.take("q", 1000.0, 10).rows()
    assert [(r.id, r.attempts) for r in taken] == [("p1", 3), ("p2", 3), ("f1", 3)]
    store.trim_acked("q", keep=1)
    assert [m[0] for m in store.messages("q", ACKED)] == ["m2"]  # the last one acked stays


def test_a_version_1_file_is_read_as_it_is_by_a_read_only_store(tmp_path: Path) -> None:
    from edgelet.bindings.queues.schema import SCHEMA, V1
    from edgelet.bindings.queues.storage import INFLIGHT, QueueStore
    from edgelet.state import open_database
    path = tmp_path / "queues.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1 + "PRAGMA user_version = 1;")
    conn.executemany("INSERT INTO queue_messages (queue, id, timestamp_ms, content_type, body, visible_at, state)"
                     " VALUES ('q', ?, 1000, 'json', '1', ?, ?)", [("a", 0.0, 0), ("b", 50.0, 0), ("c", 0.0, INFLIGHT)])
    conn.execute("INSERT INTO queue_stats (queue, acked) VALUES ('q', 4)")
    conn.close()
    ro = open_database(path, read_only=True, schema=SCHEMA)  # as `edgelet queues list` without dev
    summary = QueueStore(ro, read_only=True).summary("q", 10.0)
    ro.close()
    assert (summary["backlog"], summary["delayed"], summary["in_flight"], summary["acked"]) == (2, 1, 1, 4)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 1  # left as it was
    check.close()


def test_batch_rows_split_when_their_messages_part_ways() -> None:
    from edgelet.bindings.queues.storage import ACKED, DEAD, INFLIGHT, PENDING, QueueStore
    store = QueueStore(sqlite3.connect(":memory:", isolation_level=None))
    store.insert("q", [(f"m{i}", 7, "json", b"%d" % i, 0.0) for i in range(10)])
    first = store.take("q", 1.0, 4).rows()  # fewer than the row holds: the rest keeps its place in line
    assert [r.id for r in first] == ["m0", "m1", "m2", "m3"]
    assert store.summary("q", 1.0)["in_flight"] == 4 and store.summary("q", 1.0)["backlog"] == 6
    store.settle("q", 2.0, [first[0], first[2]], [(first[1], 9.0)], [first[3]], None)
    assert [m[0] for m in store.messages("q", ACKED)] == ["m0", "m2"]
    assert [m[0] for m in store.messages("q", DEAD)] == ["m3"]
    assert [m[0] for m in store.messages("q", PENDING)] == [f"m{i}" for i in (1, 4, 5, 6, 7, 8, 9)]
    rest = store.take("q", 3.0, 100).rows()
    assert [(r.id, r.attempts) for r in rest] == [(f"m{i}", 1) for i in range(4, 10)]  # m1 waits for 9.0
    store.settle("q", 4.0, [], [], rest, "dlq")  # moved as a whole row: attempts start again
    assert [(m[0], m[4]) for m in store.messages("dlq", PENDING)] == [(f"m{i}", 0) for i in range(4, 10)]
    assert store.messages("q", INFLIGHT) == []
    assert [r.id for r in store.take("q", 10.0, 100).rows()] == ["m1"]
    summary = store.summary("q", 10.0)
    assert (summary["acked"], summary["dead"], summary["in_flight"], summary["backlog"]) == (2, 7, 1, 0)
