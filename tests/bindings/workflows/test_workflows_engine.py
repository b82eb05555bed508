"""Workflows: the durable engine on a virtual clock — steps, replay, retries, sleeps, events."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from test_workflows_support import app_config, jump, lines, module_platform, seconds, until, workflow, workflow_mocks

from edgelet.testing import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = app_config(basic="Basic", flaky="Flaky", catches="Catches", nonretry="NonRetry", sleeper="Sleeper",
                    waiter="Waiter", bad="Bad", timeouts="Timeouts")

APP = """
    import asyncio, datetime
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from workers.workflows import NonRetryableError
    from wf_log import mark

    UTC = datetime.timezone.utc

    class Basic(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("one")
            async def one():
                mark(event, "one")
                return {"n": event.payload["n"] + 1, "raw": b"\\x00\\xff", "tuple": (1, 2),
                        "when": datetime.datetime(2020, 1, 2, tzinfo=UTC)}
            first = await one()
            await step.sleep("nap", "1 hour")
            @step.do("two")
            async def two():
                mark(event, "two")
                return first["n"] * 2
            return {"first": first, "two": await two(), "id": event.instanceId,
                    "workflow": event["workflowName"], "ts": isinstance(event.timestamp, datetime.datetime)}

    class Flaky(WorkflowEntrypoint):
        async def run(self, event, step):
            retries = {"limit": event.payload["limit"], "delay": "10 seconds",
                       "backoff": event.payload["backoff"]}
            @step.do("flaky", config={"retries": retries})
            async def flaky(ctx):
                mark(event, f"attempt {ctx.attempt} {ctx.step.name}#{ctx.step.count}")
                if ctx.attempt < event.payload["ok_at"]:
                    raise ValueError(f"boom {ctx.attempt}")
                return ctx.attempt
            return await flaky()

    class Catches(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("bad", config={"retries": {"limit": 1, "delay": 1000, "backoff": "constant"}})
            async def bad():
                mark(event, "bad")
                raise KeyError("missing thing")
            try:
                await bad()
                caught = "nothing"
            except KeyError as exc:
                caught = f"KeyError:{exc.args[0]}"
            await step.sleep("then", "1 minute")
            @step.do("after")
            async def after():
                mark(event, "after")
                return caught
            return [caught, await after()]

    class NonRetry(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("charge")
            async def charge():
                mark(event, "charge")
                raise NonRetryableError("card declined", event.payload.get("name"))
            await charge()

    class Sleeper(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.sleep_until("until epoch", event.payload["at"])
            mark(event, "woke 1")
            await step.sleep_until("until dt", datetime.datetime.fromtimestamp(event.payload["at2"], UTC))
            mark(event, "woke 2")
            for i in range(3):
                await step.sleep("tick", 1000)
            return "slept"

    class Waiter(WorkflowEntrypoint):
        async def run(self, event, step):
            got = []
            for _ in range(2):
                ev = await step.wait_for_event("approval", "approve", timeout="1 hour")
                got.append([ev.payload, ev["type"], isinstance(ev.timestamp, datetime.datetime)])
            try:
                await step.wait_for_event("late", "never", timeout="10 seconds")
            except TimeoutError as exc:
                got.append(type(exc).__name__)
            return got

    class Bad(WorkflowEntrypoint):
        async def run(self, event, step):
            kind = event.payload["kind"]
            if kind == "outside":
                raise ZeroDivisionError("outside any step")
            if kind == "long-name":
                @step.do("x" * 257)
                async def s():
                    return 1
                return await s()
            if kind in ("big", "object", "bigint"):
                @step.do("result", config={"retries": {"limit": 3, "delay": 1}})
                async def s():
                    mark(event, "result")
                    if kind == "big":
                        return "x" * (2 * 1024 * 1024)
                    if kind == "bigint":
                        return {"n": 2 ** 70}
                    return {"fine": [1, {"bad": object()}]}
                return await s()
            if kind == "output":
                return {1, 2}
            if kind.startswith("config"):
                config = {"config-limit": {"retries": {"limit": -1}},
                          "config-backoff": {"retries": {"backoff": "fibonacci"}},
                          "config-timeout": {"timeout": 0},
                          "config-key": {"retry": 3}}[kind]
                @step.do("configured", config=config)
                async def s():
                    return 1
                return await s()
            if kind == "event-type":
                await step.wait_for_event("w", "has space")
            if kind == "wait-timeout":
                await step.wait_for_event("w", "ok", timeout="500 ms")
            if kind == "sleep-long":
                await step.sleep("s", "400 days")

    class Timeouts(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("slow", config={"timeout": "100 ms", "retries": {"limit": 1, "delay": 0}})
            async def slow(ctx):
                mark(event, f"slow {ctx.attempt}")
                await asyncio.sleep(event.payload.get("real", 30))
                return "finished"
            return await slow()

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


p = module_platform("wf-engine", {"wrangler_like.toml": CONFIG, "app.py": APP})


async def test_steps_replay_from_history_and_results_round_trip(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "basic.log"
    inst = await workflow(p, "BASIC").create(id="basic-1", params={"n": 41, "log": str(log)})
    await p.settle()
    status = await inst.status()
    assert status.status == "waiting" and status["error"] is None
    assert lines(log) == ["one"]
    await p.advance(seconds(3599))
    assert (await inst.status()).status == "waiting"
    await p.advance(seconds(2))
    info = await inst.wait_for_status("complete", timeout=5)
    # the first step ran once although run() replayed from the top after the sleep
    assert lines(log) == ["one", "two"]
    first = info.output["first"]
    assert first == {"n": 42, "raw": b"\x00\xff", "tuple": [1, 2],
                     "when": dt.datetime(2020, 1, 2, tzinfo=dt.UTC)}
    assert info.output["two"] == 84
    assert info.output["id"] == "basic-1" and info.output["workflow"] == "basic" and info.output["ts"]
    steps = await inst.steps()
    assert [(s.type, s.name, s.count, s.success) for s in steps] == [
        ("step", "one", 1, True), ("sleep", "nap", 1, True), ("step", "two", 1, True)]
    assert steps[0].config == {"retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"},
                               "timeout": "10 minutes"}
    assert len(steps[0].attempts) == 1 and steps[0].attempts[0].success
    # a first attempt that succeeded spans the step itself (describe derives it from the step row)
    assert (steps[0].attempts[0].start, steps[0].attempts[0].end) == (steps[0].start, steps[0].end)
    assert steps[0].attempts[0].error is None


@pytest.mark.parametrize("backoff,delays", [("exponential", [10, 20]), ("linear", [10, 20]),
                                            ("constant", [10, 10])])
async def test_retries_wait_the_configured_backoff(p: Platform, tmp_path: Path, backoff: str,
                                                   delays: list[int]) -> None:
    log = tmp_path / "flaky.log"
    inst = await workflow(p, "FLAKY").create(params={"log": str(log), "ok_at": 3, "limit": 3, "backoff": backoff})
    await p.settle()
    assert lines(log) == ["attempt 1 flaky#1"]
    assert (await inst.status()).status == "waiting"  # a retry delay holds no running slot
    await p.advance(seconds(delays[0] - 0.5))
    assert lines(log) == ["attempt 1 flaky#1"]
    await p.advance(seconds(1))
    assert lines(log) == ["attempt 1 flaky#1", "attempt 2 flaky#1"]
    await p.advance(seconds(delays[1] - 1))
    assert len(lines(log)) == 2
    await p.advance(seconds(1))
    assert (await inst.wait_for_status("complete", timeout=5)).output == 3
    steps = await inst.steps()
    attempts = steps[0].attempts
    assert [a.success for a in attempts] == [False, False, True]
    assert attempts[0].error == {"name": "ValueError", "message": "boom 1"}


async def test_exhausted_retries_fail_the_instance(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "flaky.log"
    inst = await workflow(p, "FLAKY").create(params={"log": str(log), "ok_at": 99, "limit": 2,
                                                    "backoff": "constant"})
    await p.advance(seconds(25))
    status = await inst.status()
    assert status.status == "errored"
    assert status.error == {"name": "ValueError", "message": "boom 3"}  # limit 2 = three attempts
    assert len(lines(log)) == 3
    with pytest.raises(AssertionError, match="errored.*boom 3"):
        await inst.wait_for_status("complete", timeout=1)


async def test_caught_failure_lets_run_continue_and_replays_the_same_error(p: Platform,
                                                                         tmp_path: Path) -> None:
    log = tmp_path / "catch.log"
    inst = await workflow(p, "CATCHES").create(params={"log": str(log)})
    await p.advance(seconds(2))  # first attempt, one retry after 1 s, then the sleep
    assert lines(log) == ["bad", "bad"]
    await p.advance(seconds(61))
    info = await inst.wait_for_status("complete", timeout=5)
    # on the replay after the sleep, 'bad' raised the stored KeyError again without running
    assert info.output == ["KeyError:missing thing", "KeyError:missing thing"]
    assert lines(log) == ["bad", "bad", "after"]
    bad = (await inst.steps())[0]
    assert bad.success is False and bad.error == {"name": "KeyError", "message": "missing thing"}


async def test_non_retryable_error_fails_at_once_with_its_name(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "nr.log"
    plain = await workflow(p, "NONRETRY").create(params={"log": str(log)})
    named = await workflow(p, "NONRETRY").create(params={"log": str(log), "name": "CardDeclined"})
    await p.settle()
    assert (await plain.status()).error == {"name": "NonRetryableError", "message": "card declined"}
    assert (await named.status()).error == {"name": "CardDeclined", "message": "card declined"}
    assert lines(log) == ["charge", "charge"]  # no retries despite the default limit of 5


async def test_sleep_until_and_repeated_names(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "sleep.log"
    now = p.clock.now()
    inst = await workflow(p, "SLEEPER").create(params={"log": str(log), "at": now + 100, "at2": now + 200})
    await p.settle()
    await p.advance(seconds(99))
    assert lines(log) == []
    await p.advance(seconds(2))
    assert lines(log) == ["woke 1"]
    await p.advance(seconds(99.5))
    # code outside steps runs again on every replay; only step results are remembered
    assert lines(log) == ["woke 1", "woke 1", "woke 2"]
    await p.advance(seconds(3))
    assert (await inst.wait_for_status("complete", timeout=5)).output == "slept"
    steps = await inst.steps()
    assert [(s.name, s.count) for s in steps if s.name == "tick"] == [("tick", 1), ("tick", 2), ("tick", 3)]


async def test_events_are_buffered_in_order_and_timeouts_can_be_caught(p: Platform) -> None:
    inst = await workflow(p, "WAITER").create(id="waiter-1")
    # sent before the instance ever ran: buffered, consumed in order of arrival
    await inst.sendEvent(type="approve", payload={"n": 1})
    await inst.send_event(type="approve", payload={"n": 2})
    await p.settle()
    assert (await inst.status()).status == "waiting"  # now waiting for 'never'
    await p.advance(seconds(11))
    info = await inst.wait_for_status("complete", timeout=5)
    assert info.output == [[{"n": 1}, "approve", True], [{"n": 2}, "approve", True], "WorkflowTimeoutError"]
    late = (await inst.steps())[-1]
    assert late.type == "waitForEvent" and late.success is False
    assert late.error.name == "WorkflowTimeoutError" and "never" in late.error.message


async def test_event_sent_while_waiting_wakes_the_instance(p: Platform) -> None:
    inst = await workflow(p, "WAITER").create()
    await p.settle()
    assert (await inst.status()).status == "waiting"
    await inst.sendEvent(type="approve", payload="first")
    await p.settle()
    steps = await inst.steps()
    assert steps[0].output["payload"] == "first" and steps[0].output["type"] == "approve"
    assert len(steps) == 2 and steps[1].finished is False  # the second approval is awaited
    await inst.sendEvent({"type": "approve", "payload": "second"})
    await p.advance(seconds(11))
    assert (await inst.wait_for_status("complete", timeout=5)).output[1][0] == "second"


async def test_step_attempt_timeout_follows_the_platform_clock(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    inst = await workflow(p, "TIMEOUTS").create(params={"log": str(log)})
    await until(lambda: lines(log) == ["slow 1"])
    await asyncio.sleep(0.3)                     # real time passing does not time it out ...
    assert (await inst.status()).status == "running"
    await jump(p, 0.1)                           # ... the platform clock passing 100 ms does
    await until(lambda: lines(log) == ["slow 1", "slow 2"])
    await jump(p, 0.1)
    status = await inst.wait_for_status("errored", timeout=10)
    assert status.error.name == "WorkflowTimeoutError"
    assert "timed out after 100 ms" in status.error.message
    attempts = (await inst.steps())[0].attempts
    assert [a.error.name for a in attempts] == ["WorkflowTimeoutError", "WorkflowTimeoutError"]


async def test_real_time_spent_in_a_step_does_not_count_on_a_virtual_clock(p: Platform, tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    inst = await workflow(p, "TIMEOUTS").create(params={"log": str(log), "real": 0.3})
    assert (await inst.wait_for_status("complete", timeout=10)).output == "finished"


@pytest.mark.parametrize("kind,name,words", [
    ("outside", "ZeroDivisionError", ["outside any step"]),
    ("long-name", "ValueError", ["257 characters", "256"]),
    ("big", "ValueError", ["2.0 MiB", "limit is 1.0 MiB", "step 'result'"]),
    ("object", "TypeError", ["type object", "['fine'][1]['bad']", "step 'result'"]),
    ("bigint", "TypeError", ["too large"]),
    ("output", "TypeError", ["type set", "run()"]),
    ("config-limit", "ValueError", ["retries.limit", "-1"]),
    ("config-backoff", "ValueError", ["fibonacci", "exponential"]),
    ("config-timeout", "ValueError", ["timeout must be longer than zero"]),
    ("config-key", "ValueError", ["unknown key", "retry"]),
    ("event-type", "ValueError", ["invalid event type 'has space'"]),
    ("wait-timeout", "ValueError", ["between 1 second and 365 days"]),
    ("sleep-long", "ValueError", ["longer than 365 days"]),
])
async def test_bad_input_inside_run_errors_the_instance(p: Platform, tmp_path: Path, kind: str,
                                                        name: str, words: list[str]) -> None:
    log = tmp_path / "bad.log"
    inst = await workflow(p, "BAD").create(params={"kind": kind, "log": str(log)})
    status = await inst.wait_for_status("errored", timeout=10)
    assert status.error.name == name, status.error
    for word in words:
        assert word in status.error.message, status.error.message
    if kind in ("big", "object", "bigint"):
        assert lines(log) == ["result"]  # an unstorable result is not retried


async def test_binding_bad_input(p: Platform) -> None:
    wf = workflow(p, "BASIC")
    for bad in ("-starts-with-dash", "has space", "x" * 101, "", "ünïcode"):
        with pytest.raises(ValueError, match="invalid instance id"):
            await wf.create(id=bad)
    await wf.create(id="taken", params={"n": 1, "log": "/dev/null"})
    with pytest.raises(ValueError, match="'taken' is already in use"):
        await wf.create(id="taken")
    with pytest.raises(ValueError, match="appears twice"):
        await wf.createBatch([{"id": "b1"}, {"id": "b1"}])
    with pytest.raises(ValueError, match="already in use"):
        await wf.createBatch([{"id": "b2"}, {"id": "taken"}])
    with pytest.raises(LookupError):
        await wf.get("b2")  # the batch was atomic: nothing was created
    with pytest.raises(ValueError, match="at most 100"):
        await wf.createBatch([{} for _ in range(101)])
    with pytest.raises(LookupError, match="has no instance 'nope'"):
        await wf.get("nope")
    with pytest.raises(LookupError, match="no workflow binding 'NOPE'"):
        workflow(p, "NOPE")
    with pytest.raises(LookupError, match="unknown workflow 'nope'"):
        workflow_mocks(p, "nope")
    inst = await wf.get("taken")
    with pytest.raises(ValueError, match="invalid event type"):
        await inst.sendEvent(type="bad type!")
    with pytest.raises(ValueError, match="invalid event type"):
        await inst.sendEvent(type="x" * 101)
    with pytest.raises(TypeError, match="not serializable.*type object"):
        await wf.create(params={"x": object()})


async def test_send_event_to_finished_instance_raises(p: Platform, tmp_path: Path) -> None:
    inst = await workflow(p, "NONRETRY").create(params={"log": str(tmp_path / "x.log")})
    await inst.wait_for_status("errored", timeout=5)
    with pytest.raises(RuntimeError, match="cannot send event 'go'.*it is errored"):
        await inst.sendEvent(type="go", payload=1)


async def test_create_batch_and_listing(p: Platform) -> None:
    wf = workflow(p, "WAITER")
    batch = await wf.createBatch([{"id": "batch-a"}, {"id": "batch-b", "params": {"x": 1}}, {}])
    assert [b.id for b in batch][:2] == ["batch-a", "batch-b"] and len(batch[2].id) == 36
    await p.settle()
    waiting = {i.id for i in await wf.instances(status="waiting")}
    assert {"batch-a", "batch-b", batch[2].id} <= waiting
    with pytest.raises(ValueError, match="unknown status"):
        await wf.instances(status="sleeping")
