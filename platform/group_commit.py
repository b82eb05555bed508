"""Group commit: writes that arrive in one event-loop turn share one SQLite transaction.

Why: with WAL, a COMMIT costs more than the few rows it carries, so committing every
KV put, queue send or workflow step separately made the commit the cost of the write.
Writers queued in the same loop turn now share one; each caller still gets its answer only
after that COMMIT, so nothing is acknowledged before it is durable (kill -9 safe).
Each write runs in its own SAVEPOINT: one that raises is undone alone and its caller gets
the exception; the others commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("edgelet.storage")

T = TypeVar("T")

#: with ``retry_busy_s``: how long a BEGIN waits, in turn, for a write lock held elsewhere
#: before the writes come back later (0.35 ms in all, where SQLite's busy handler sleeps 1 ms
#: first)
_SHORT_WAITS_S = (0.00005, 0.0001, 0.0002)
#: with ``retry_busy_s`` but no running loop (a flush at shutdown): how long a BEGIN waits
#: for the write lock in SQLite's busy handler before the writes fail
BLOCKING_BUSY_MS = 5000


class StoreWriteError(RuntimeError):
    """The shared transaction failed, so none of its writes was stored; ``__cause__`` is
    SQLite's error (``database or disk is full``, ...)."""


class NotNow(Exception):
    """:meth:`GroupCommit.commit_now` could not commit at once (other writes are queued,
    or another process holds the write lock): nothing was written; use :meth:`GroupCommit.run`."""


class GroupCommit:
    """``await group.run(write)`` runs ``write()`` (SQL on ``conn``) and returns its result
    once the shared transaction has committed."""

    def __init__(self, conn: sqlite3.Connection, what: str = "write", *,
                 retry_busy_s: float | None = None) -> None:
        self.conn = conn
        self.what = what
        #: another process holds the write lock: try again after this long instead of
        #: sleeping the loop in SQLite's busy handler (1, 2, 5 ... ms) or failing; for a
        #: file two processes write (Workflows: the host and an isolate, see
        #: edgelet.bindings.workflows.local). Only the BEGIN runs with a busy timeout of 0.
        self.retry_busy_s = retry_busy_s
        self._busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0]) if retry_busy_s else 0
        #: each write with its future (run) or its callback (submit)
        self._batch: list[tuple[Callable[[], Any], Any]] = []
        #: a flush is scheduled (call_soon) for the writes waiting now
        self._armed = False

    def submit(self, write: Callable[[], Any], done: Callable[[Any, BaseException | None], None], *,
               flushed_by_caller: bool = False) -> None:
        """``write`` joins the shared transaction like :meth:`run`; ``done(value, error)`` is
        called right after the COMMIT, inside :meth:`flush` (no future, no task: a caller
        that flushes at once, such as a channel settling its read, answers in the same loop
        turn). ``flushed_by_caller``: the caller calls :meth:`flush` before its loop turn
        ends, so no flush is scheduled (one loop turn less per write)."""
        self._batch.append((write, done))
        if not flushed_by_caller:
            self._schedule()

    async def run(self, write: Callable[[], T]) -> T:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((write, future))
        self._schedule()
        return await future

    def commit_now(self, write: Callable[[], T]) -> T:
        """``write()`` in a transaction of its own, committed before this returns: no
        future and no loop turn. For a caller that knows no other write would join this
        loop turn's transaction (one sequential writer), where the turn :meth:`run` waits
        for is most of the write's time. Raises :class:`NotNow` (nothing written) when
        writes are already queued (they go first, in order) or another process holds the
        write lock; an exception from ``write`` is raised after its rollback; a failed
        transaction raises :class:`StoreWriteError`, as :meth:`run` does."""
        if self._batch:
            raise NotNow
        if self.retry_busy_s is None:
            self.conn.execute("BEGIN IMMEDIATE")
        elif not self._begin_now():
            raise NotNow
        try:
            value = write()
        except Exception as exc:
            if not isinstance(exc, sqlite3.Error) or self.conn.in_transaction:
                self.conn.execute("ROLLBACK")  # this write alone was refused (a stale record)
                raise
            failure: sqlite3.Error = exc  # SQLite ended the transaction (disk full, I/O error)
        else:
            try:
                self.conn.execute("COMMIT")
                return value
            except sqlite3.Error as exc:
                failure = exc
        log.error("%s commit failed; 1 write not stored: %s", self.what, failure)
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise StoreWriteError(f"{self.what} not stored: {failure}") from failure

    def _schedule(self) -> None:
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._armed = False
        self.flush()

    def _begin_now(self) -> bool:
        """BEGIN IMMEDIATE, waiting for another process's write lock a few short moments
        (its transactions take tens of microseconds) but never SQLite's 1 ms and more;
        False if it is still held (the caller comes back later, the loop runs meanwhile)."""
        if self._busy_ms:
            self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            for pause in (*_SHORT_WAITS_S, None):
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return True
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # BUSY_RECOVERY, BUSY_SNAPSHOT too
                        raise
                if pause is not None:
                    time.sleep(pause)
            return False
        finally:
            if self._busy_ms:
                self.conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _begin_blocking(self) -> None:
        """BEGIN IMMEDIATE waiting in SQLite's busy handler (up to ``BLOCKING_BUSY_MS``):
        only where no loop runs to come back on."""
        self.conn.execute(f"PRAGMA busy_timeout = {max(self._busy_ms, BLOCKING_BUSY_MS)}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def flush(self) -> None:
        """Run and commit the waiting writes now (also called on shutdown)."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        outcomes: list[tuple[Any, Any, BaseException | None]] = []
        try:
            if self.retry_busy_s is None:
                self.conn.execute("BEGIN IMMEDIATE")
            elif not self._begin_now():
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop to come back on (a flush at shutdown): wait here
                    self._begin_blocking()
                else:
                    # nothing ran yet: the same writes, a moment later. Scheduled before they
                    # go back, so nothing can fail them here and leave them queued as well
                    # (their callbacks would run twice, the second time after a commit)
                    loop.call_later(self.retry_busy_s, self.flush)
                    self._batch[:0] = batch
                    return
            if len(batch) == 1:  # alone (a sequential caller): the transaction is its savepoint
                write, future = batch[0]
                try:
                    outcomes.append((future, write(), None))
                except Exception as exc:
                    if isinstance(exc, sqlite3.Error) and not self.conn.in_transaction:
                        raise
                    self.conn.execute("ROLLBACK")
                    outcomes.append((future, None, exc))
            for write, future in batch if len(batch) > 1 else ():
                self.conn.execute("SAVEPOINT group_write")
                try:
                    outcomes.append((future, write(), None))
                    self.conn.execute("RELEASE group_write")
                except Exception as exc:  # this write only (refused input, a stale record)
                    if isinstance(exc, sqlite3.Error) and not self.conn.in_transaction:
                        raise  # SQLite ended the whole transaction (disk full, I/O error)
                    self.conn.execute("ROLLBACK TO group_write")
                    self.conn.execute("RELEASE group_write")
                    outcomes.append((future, None, exc))
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        except Exception as exc:  # the transaction itself failed: nothing was stored
            log.error("%s commit failed; %d write(s) not stored: %s", self.what, len(batch), exc)
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            failure = StoreWriteError(f"{self.what} not stored: {exc}")
            failure.__cause__ = exc  # the control API tells a full disk from other faults
            outcomes = [(future, None, failure) for _, future in batch]
        for future, value, error in outcomes:
            if not isinstance(future, asyncio.Future):  # submit's callback
                try:
                    future(value, error)
                except Exception:  # one caller's bug must not keep the others waiting
                    log.exception("%s: a callback after the commit failed", self.what)
            elif future.done():
                continue
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
