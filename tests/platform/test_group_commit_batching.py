"""Group commit (edgelet.group_commit): writes queued in one event-loop turn share one
SQLite COMMIT, a write that raises is undone alone, and nothing is acknowledged before it
is durable (checked from another connection and across a SIGKILL)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgelet.group_commit import GroupCommit


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")
    return conn


def rows(path: Path) -> dict[str, int]:
    """What another connection (a reader that never saw the writer's cache) can read."""
    other = sqlite3.connect(path)
    try:
        return dict(other.execute("SELECT k, v FROM t"))
    finally:
        other.close()


def commits_of(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


async def test_writes_in_one_loop_turn_share_one_commit(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite3")
    commits = commits_of(conn)
    group = GroupCommit(conn, "test write")

    def put(i: int) -> int:
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", i))
        return i

    results = await asyncio.gather(*(group.run(lambda i=i: put(i)) for i in range(50)))
    assert results == list(range(50))  # every caller gets its own answer
    assert len(commits) == 1
    assert rows(tmp_path / "db.sqlite3") == {f"k{i}": i for i in range(50)}

    # writes awaited one after the other each get their own commit
    await group.run(lambda: put(100))
    await group.run(lambda: put(101))
    assert len(commits) == 3


async def test_a_failing_write_is_undone_alone_and_its_caller_gets_the_error(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite3")
    group = GroupCommit(conn, "test write")

    def good(k: str) -> str:
        conn.execute("INSERT INTO t VALUES (?, 1)", (k,))
        return k

    def bad() -> None:
        conn.execute("INSERT INTO t VALUES ('half-written', 1)")
        raise ValueError("refused: value too large")

    outcomes = await asyncio.gather(group.run(lambda: good("a")), group.run(bad), group.run(lambda: good("b")),
                                    return_exceptions=True)
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "refused: value too large"
    # the others committed; the failing write's own row was rolled back with it
    assert rows(tmp_path / "db.sqlite3") == {"a": 1, "b": 1}


async def test_a_lone_failing_write_is_undone_and_the_next_one_commits(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db.sqlite3")
    group = GroupCommit(conn, "test write")

    def bad() -> None:
        conn.execute("INSERT INTO t VALUES ('half-written', 1)")
        raise ValueError("refused: stale run")

    with pytest.raises(ValueError, match="refused: stale run"):
        await group.run(bad)  # alone in its loop turn: no savepoint, the transaction is undone
    assert not conn.in_transaction
    assert await group.run(lambda: conn.execute("INSERT INTO t VALUES ('next', 2)").rowcount) == 1
    assert rows(tmp_path / "db.sqlite3") == {"next": 2}


async def test_a_commit_that_cannot_happen_acknowledges_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    conn = open_db(path)
    group = GroupCommit(conn, "KV write")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: BEGIN fails at once
    try:
        outcomes = await asyncio.gather(
            group.run(lambda: conn.execute("INSERT INTO t VALUES ('x', 1)")),
            group.run(lambda: conn.execute("INSERT INTO t VALUES ('y', 1)")), return_exceptions=True)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert "KV write not stored" in str(outcomes[0]) and "locked" in str(outcomes[0])
    assert rows(path) == {}
    # the group recovers: the next write commits
    await group.run(lambda: conn.execute("INSERT INTO t VALUES ('z', 1)"))
    assert rows(path) == {"z": 1}


WRITER = """
    import asyncio, sqlite3, sys
    from edgelet.group_commit import GroupCommit

    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")
    group = GroupCommit(conn, "test write")

    async def main():
        n = 0
        while True:
            batch = [group.run(lambda k=f"k{n + i}": conn.execute("INSERT INTO t VALUES (?, 1)", (k,)))
                     for i in range(10)]
            await asyncio.gather(*batch)
            n += 10
            print(n, flush=True)  # acknowledged: the whole batch has committed

    asyncio.run(main())
"""


def test_acknowledged_writes_survive_a_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = 0
    for line in proc.stdout:
        acked = int(line)
        if acked >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stored = rows(path)
    assert acked >= 300
    assert len(stored) >= acked  # every acknowledged write is there
    assert all(f"k{i}" in stored for i in range(acked))


async def test_a_write_lock_held_elsewhere_delays_the_commit_without_blocking_the_loop(tmp_path: Path) -> None:
    # retry_busy_s (a Workflows isolate sharing the host's file): the lock held by another
    # connection makes the write wait for it, while the loop goes on serving other work
    path = tmp_path / "db.sqlite3"
    conn = open_db(path)  # busy timeout 0: SQLite's handler would sleep the loop otherwise
    group = GroupCommit(conn, retry_busy_s=0.0005)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES ('other', 1)")
    write = asyncio.ensure_future(group.run(lambda: conn.execute("INSERT INTO t VALUES ('mine', 2)")))
    turns = 0
    for _ in range(50):  # the loop keeps turning while the write waits for the lock
        await asyncio.sleep(0.001)
        turns += 1
    assert not write.done() and rows(path) == {}
    other.execute("COMMIT")
    await asyncio.wait_for(write, 5)
    assert turns == 50 and rows(path) == {"other": 1, "mine": 2}


async def test_without_retry_a_held_write_lock_fails_the_writes_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    conn = open_db(path)
    group = GroupCommit(conn)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(Exception, match="not stored: database is locked"):
        await group.run(lambda: conn.execute("INSERT INTO t VALUES ('mine', 2)"))
    other.execute("ROLLBACK")
    assert rows(path) == {}


def test_a_flush_with_no_loop_waits_for_a_held_lock_and_answers_each_write_once(tmp_path: Path) -> None:
    # at shutdown (no running loop to retry on) a write lock held elsewhere is waited for
    # here; the writes are committed once and each caller is answered once, with success
    import threading

    path = tmp_path / "db.sqlite3"
    conn = open_db(path)
    group = GroupCommit(conn, retry_busy_s=0.0005)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    answers: list[tuple[object, BaseException | None]] = []
    group.submit(lambda: conn.execute("INSERT INTO t VALUES ('mine', 2)").rowcount,
                 lambda value, error: answers.append((value, error)), flushed_by_caller=True)
    threading.Timer(0.05, lambda: other.execute("COMMIT")).start()
    group.flush()
    group.flush()  # nothing left queued: a second flush answers nobody again
    assert answers == [(1, None)]
    assert rows(path) == {"mine": 2}


async def test_commit_now_commits_before_returning_and_refuses_while_writes_are_queued(tmp_path: Path) -> None:
    from edgelet.group_commit import NotNow

    path = tmp_path / "db.sqlite3"
    conn = open_db(path)
    group = GroupCommit(conn, retry_busy_s=0.0005)
    assert group.commit_now(lambda: conn.execute("INSERT INTO t VALUES ('now', 1)").rowcount) == 1
    assert rows(path) == {"now": 1}  # durable before the caller goes on, no loop turn taken
    queued = asyncio.ensure_future(group.run(lambda: conn.execute("INSERT INTO t VALUES ('queued', 2)")))
    await asyncio.sleep(0)  # the queued write is in the batch, its flush not run yet
    with pytest.raises(NotNow):  # it would jump ahead of a write queued before it
        group.commit_now(lambda: conn.execute("INSERT INTO t VALUES ('late', 3)"))
    await queued
    # a write that raises is undone alone and its caller gets the error
    with pytest.raises(sqlite3.IntegrityError):
        group.commit_now(lambda: conn.execute("INSERT INTO t VALUES ('now', 9)"))
    assert not conn.in_transaction
    # the write lock held by another connection: nothing written, the caller takes run()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(NotNow):
        group.commit_now(lambda: conn.execute("INSERT INTO t VALUES ('busy', 4)"))
    other.execute("ROLLBACK")
    assert rows(path) == {"now": 1, "queued": 2}
