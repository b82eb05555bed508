"""With the state on disk, the isolate that runs a workflow commits its finished steps (and
the run's completion) to workflows.sqlite3 itself (bindings/workflows/local.py); in memory
the host does. Either way a user sees the same history, events, log lines and refusals."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from test_workflows_support import workflow, write_app

from edgelet.testing import Platform

CONFIG = """
    name = "app"
    main = "app.py"
    workflows = [
      { name = "many", binding = "MANY", class_name = "Many" },
      { name = "endless", binding = "ENDLESS", class_name = "Endless" },
      { name = "single", binding = "SINGLE", class_name = "Single", concurrency = 1 },
      { name = "fan", binding = "FAN", class_name = "Fan" },
    ]
"""

APP = """
    import asyncio, time
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

    class Many(WorkflowEntrypoint):
        async def run(self, event, step):
            total = 0
            for i in range(event.payload["steps"]):
                @step.do(f"s{i}")
                async def one():
                    return i
                total += await one()
            await step.sleep("nap", "10 ms")        # a host call after steps committed here
            return total + await step.do("last", lambda: 1000)

    class Endless(WorkflowEntrypoint):
        async def run(self, event, step):
            i = 0
            while True:
                await step.do(f"e{i}", lambda: i)
                await asyncio.sleep(0.002)
                i += 1

    class Single(WorkflowEntrypoint):
        async def run(self, event, step):
            await asyncio.sleep(0.05)
            return await step.do("at", lambda: time.time())

    class Fan(WorkflowEntrypoint):
        async def run(self, event, step):
            n = event.payload["n"]
            def part(i):
                return lambda: n * 10 + i
            got = await asyncio.gather(*(step.do(f"p{i}", part(i)) for i in range(3)))

            @step.do("flaky", config={"retries": {"limit": 2, "delay": 0}})
            async def flaky(ctx):
                if ctx.attempt < 2:
                    raise ValueError(f"attempt {ctx.attempt} of {n}")
                return n
            return sum(got) + await flaky() + await step.do("last", lambda: n)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/single"):
                made = [await self.env.SINGLE.create(id=f"o{i}") for i in range(3)]
                return Response(" ".join([(await m.status())["status"] for m in made]))
            inst = await self.env.MANY.create(params={"steps": 5})
            if request.url.endswith("/tight"):  # a poll that never sleeps
                while (await inst.status())["status"] != "complete":
                    pass
            while (await inst.status())["status"] != "complete":
                await asyncio.sleep(0.001)
            return Response(str((await inst.status())["output"]))
"""


def host_step_records(p: Platform) -> list[Any]:
    """Spy on the host's own commit of step records (the path without a shared file)."""
    engine = p.host.plugin("workflows").engine
    calls: list[Any] = []
    original = engine.recorder.step_done_later

    def spy(args: list[Any], answer: Any) -> None:
        calls.append(args)
        original(args, answer)

    engine.recorder.step_done_later = spy
    return calls


@pytest.mark.parametrize("on_disk", [True, False], ids=["isolate-commits", "host-commits"])
async def test_the_same_history_events_and_log_whoever_commits(tmp_path: Path, on_disk: bool,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    caplog.set_level(logging.INFO, logger="edgelet.workflows")
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state" if on_disk else None) as p:
        by_host = host_step_records(p)
        inst = await workflow(p, "MANY").create(id="m-1", params={"steps": 30})
        info = await inst.wait_for_status("complete", timeout=20)
        assert info.output == sum(range(30)) + 1000
        steps = await inst.steps()
        assert [s.name for s in steps] == [f"s{i}" for i in range(30)] + ["nap", "last"]
        assert all(s.success and len(s.attempts) == 1 for s in steps if s.type == "step")
        assert [s.output for s in steps if s.type == "step"] == list(range(30)) + [1000]
        starts = [s.start for s in steps]
        assert starts == sorted(starts)

        events = [e async for e in inst.subscribe()]
        kinds = [e["type"] for e in events]
        completed = [e["step"]["name"] for e in events if e["type"] == "step.completed"]
        assert completed == [f"s{i}" for i in range(30)] + ["last"]  # in order, each once
        assert kinds.index("sleep.started") > kinds.index("step.completed")  # s29's before the nap's
        assert kinds[-1] == "workflow.completed"
        # one log line per step, whoever committed it
        assert sum("step 's" in r.getMessage() and " ok" in r.getMessage() for r in caplog.records) == 30
    # the path taken: with the file on disk the host commits none of these steps
    assert (len(by_host) == 0) if on_disk else (len(by_host) == 31)


async def test_a_worker_polling_sees_the_completion_its_isolate_committed(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        for _ in range(3):
            resp = await p.fetch("/")
            assert resp.status == 200 and await resp.text() == str(sum(range(5)) + 1000)
        listed = await workflow(p, "MANY").instances()
        assert len(listed) == 3 and {(await i.status()).status for i in listed} == {"complete"}


@pytest.mark.parametrize("on_disk", [True, False], ids=["isolate-commits", "host-commits"])
async def test_nothing_is_recorded_after_terminate(tmp_path: Path, on_disk: bool) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state" if on_disk else None) as p:
        inst = await workflow(p, "ENDLESS").create(id="e-1")
        await inst.wait_for_step("e20", timeout=20)
        await inst.terminate()
        recorded = len(await inst.steps())
        await asyncio.sleep(0.2)  # the run would have made dozens more steps by now
        assert len(await inst.steps()) == recorded
        assert (await inst.status()).status == "terminated"


async def test_the_hosts_event_write_waits_for_a_held_lock_without_stalling(tmp_path: Path) -> None:
    # an isolate holding the write lock must not put the host's loop to sleep: the periodic
    # event write comes back later, and the events are not lost meanwhile
    import sqlite3
    import time
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        inst = await workflow(p, "MANY").create(id="m-2", params={"steps": 2})
        await inst.wait_for_status("complete", timeout=20)
        assert [e["type"] async for e in inst.subscribe()][-1] == "workflow.completed"  # the last one
        events = p.host.plugin("workflows").engine.state.events
        events.flush()
        other = sqlite3.connect(tmp_path / "state" / "workflows.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        seq = p.host.plugin("workflows").engine.db.execute("SELECT seq FROM instances WHERE id = 'm-2'").fetchone()[0]
        events.emit(seq, "workflow.paused", time.time())
        t0 = time.perf_counter()
        events._flush_later()  # what the timer runs
        assert time.perf_counter() - t0 < 0.5  # SQLite's busy handler would wait up to 5 s
        assert events.has_buffered()
        other.execute("COMMIT")
        other.close()
        await asyncio.sleep(0.1)  # the retry, FLUSH_AFTER_S later
        assert not events.has_buffered()
        stored = p.host.plugin("workflows").engine.db.execute(
            "SELECT type FROM history_events WHERE instance = ? ORDER BY id DESC LIMIT 1", (seq,)).fetchone()
        assert stored == ("workflow.paused",)


async def test_an_instance_a_worker_creates_starts_at_once_but_never_ahead_of_the_queue(tmp_path: Path) -> None:
    # a free slot runs it in its creation's commit; with the slot taken, the next ones queue
    # and start in creation order, as a drain would start them
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        resp = await p.fetch("/single")
        assert await resp.text() == "running queued queued"
        handle = workflow(p, "SINGLE")
        ended = [(await (await handle.get(f"o{i}")).wait_for_status("complete", timeout=20)).output
                 for i in range(3)]
        assert ended == sorted(ended)


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pause_and_resume_never_overwrite_a_completion_the_isolate_just_committed(
        tmp_path: Path, action: str, caplog: pytest.LogCaptureFixture) -> None:
    # the isolate commits its run's completion itself: when that commit lands after the
    # host read the status but before it took the write lock, pause()/resume() must see
    # `complete` (and refuse), not turn a finished instance back into a live one
    import contextlib
    import sqlite3
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        inst = await workflow(p, "ENDLESS").create(id=f"race-{action}")
        await inst.wait_for_step("e3", timeout=20)
        if action == "resume":
            await inst.pause()
        engine = p.host.plugin("workflows").engine
        real_tx = engine.state.tx

        @contextlib.contextmanager
        def tx_after_the_isolate_completed(**kwargs: Any) -> Any:
            engine.state.tx = real_tx  # once
            other = sqlite3.connect(tmp_path / "state" / "workflows.sqlite3", isolation_level=None)
            other.execute("UPDATE instances SET status = 'complete', ended = 1 WHERE id = ?", (inst.id,))
            other.close()
            with real_tx(**kwargs):
                yield

        engine.state.tx = tx_after_the_isolate_completed
        caplog.set_level(logging.INFO, logger="edgelet.workflows")
        caplog.clear()
        with pytest.raises(RuntimeError, match=f"cannot {action} instance 'race-{action}'.*it is complete"):
            await getattr(inst, action)()
        assert (await inst.status()).status == "complete"
        assert not [r for r in caplog.records if " -> " in r.getMessage()]  # no status change said


async def test_commits_leave_checkpoints_to_the_hosts_thread_which_keeps_the_file_current(tmp_path: Path) -> None:
    # a checkpoint's fsyncs took 10-20 ms inside whichever commit crossed 1,000 WAL pages,
    # on the host's loop or an isolate's; now neither connection checkpoints, and a thread
    # of the host copies the WAL into the database file within moments
    import shutil
    import sqlite3
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        engine = p.host.plugin("workflows").engine
        assert engine.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        inst = await workflow(p, "MANY").create(id="ck-1", params={"steps": 200})
        await inst.wait_for_status("complete", timeout=20)
        await asyncio.sleep(0.3)  # several of the thread's rounds
        # the main file alone (no WAL beside it) already holds the run's rows
        alone = tmp_path / "alone.sqlite3"
        shutil.copy(tmp_path / "state" / "workflows.sqlite3", alone)
        conn = sqlite3.connect(alone)
        try:
            assert conn.execute("SELECT status FROM instances WHERE id = 'ck-1'").fetchone() == ("complete",)
            assert conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 202
        finally:
            conn.close()


async def test_a_worker_reads_status_from_the_shared_file_and_a_tight_poll_still_lets_the_run_finish(
        tmp_path: Path) -> None:
    # status() is read in the isolate (no host round trip per poll), yet each read gives
    # the loop a turn as a call to the host would: the run sharing that loop goes on
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        plugin = p.host.plugin("workflows")
        asked: list[str] = []
        real = plugin.handle_call

        async def spy(worker: str, binding: str, method: str, args: list[Any]) -> Any:
            asked.append(method)
            return await real(worker, binding, method, args)

        plugin.handle_call = spy
        resp = await asyncio.wait_for(p.fetch("/tight"), 20)
        assert resp.status == 200 and await resp.text() == str(sum(range(5)) + 1000)
        assert asked == ["create"]  # no status() went to the host


async def test_many_runs_at_once_share_one_write_and_keep_each_history(tmp_path: Path) -> None:
    """40 instances in one isolate: their step records of a loop turn are one write
    (records.steps_done); each history still has its steps in order, the retried step
    its attempts, and every step its events."""
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        by_host = host_step_records(p)
        fan = workflow(p, "FAN")
        await fan.createBatch([{"id": f"f{n}", "params": {"n": n}} for n in range(40)])
        for n in range(40):
            inst = await fan.get(f"f{n}")
            info = await inst.wait_for_status("complete", timeout=30)
            assert info.output == (n * 10) * 3 + 3 + n + n
            steps = await inst.steps()
            assert {s.name for s in steps[:3]} == {"p0", "p1", "p2"}
            assert [s.name for s in steps[3:]] == ["flaky", "last"]
            assert sorted(s.output for s in steps[:3]) == [n * 10, n * 10 + 1, n * 10 + 2]
            flaky = steps[3]
            assert flaky.success and flaky.output == n
            assert [a.success for a in flaky.attempts] == [False, True]
            assert flaky.attempts[0].error.message == f"attempt 1 of {n}"
            kinds = [(e["type"], e.get("step", {}).get("name")) async for e in inst.subscribe()]
            assert sorted(name for kind, name in kinds if kind == "step.completed") == \
                ["flaky", "last", "p0", "p1", "p2"]
            assert ("attempt.failed", "flaky") in kinds
    assert by_host == []  # every step was committed by the isolate


async def test_terminated_runs_among_many_record_nothing_more_and_the_others_go_on(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG, "app.py": APP})
    async with Platform(tmp_path / "wrangler_like.toml", persist=tmp_path / "state") as p:
        endless = workflow(p, "ENDLESS")
        insts = [await endless.create(id=f"e{i}") for i in range(6)]
        for inst in insts:
            await inst.wait_for_step("e10", timeout=20)
        for inst in insts[:3]:
            await inst.terminate()
        stopped = [len(await inst.steps()) for inst in insts[:3]]
        going = [len(await inst.steps()) for inst in insts[3:]]
        await asyncio.sleep(0.3)
        assert [len(await inst.steps()) for inst in insts[:3]] == stopped
        now_going = [len(await inst.steps()) for inst in insts[3:]]
        assert all(now > before for now, before in zip(now_going, going, strict=True))
        assert {(await inst.status()).status for inst in insts[3:]} == {"running"}
        for inst in insts[3:]:
            await inst.terminate()
