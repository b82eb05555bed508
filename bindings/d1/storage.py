"""D1 storage: one SQLite database per ``database_id``, and the code that runs SQL on it.

Why one file per database (``<state>/d1/<id>.sqlite3``) rather than one shared file as KV
does: a D1 database *is* a SQLite database. Users' tables, indexes and ``PRAGMA``s must not
meet another database's, ``dump()`` and ``d1 export`` hand out the file itself, and the CLI
can work on one database while ``edgelet dev`` serves another. With ``--in-memory`` each
database is one in-memory connection, shared by every Worker that binds its id.

Each database runs its calls on a thread of its own, one call at a time (``D1Database.submit``),
so a call is atomic with respect to the others: a ``batch`` (or a multi-statement ``exec``) is
one ``BEGIN IMMEDIATE ... COMMIT``, and a ``kill -9`` mid-batch leaves WAL recovery to drop all
of it. Off the host's event loop, because a Worker's query may run long (a recursive CTE
without an end): other Workers, the control API and Ctrl-C go on meanwhile, and a statement
past D1's query limit (30 s, ``EDGELET_D1_QUERY_TIMEOUT``) is interrupted with D1's error.
User SQL runs under an authorizer that refuses what would break that contract or reach
outside the database (``BEGIN``/``COMMIT``/``SAVEPOINT``, ``ATTACH``, journal pragmas).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgelet.bindings.d1 import limits
from edgelet.bindings.d1.errors import D1Error
from edgelet.bindings.d1.sqltext import split_statements
from edgelet.env_seconds import seconds_from_env

log = logging.getLogger("edgelet.d1")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER)\b", re.I)
_VACUUM = re.compile(r"^\s*VACUUM\b", re.I)
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
_NO_TRANSACTIONS = ("BEGIN, COMMIT, ROLLBACK and SAVEPOINT are not allowed in D1; run statements "
                    "atomically with env.DB.batch([...])")
_REFUSED_PRAGMAS = frozenset({"journal_mode", "locking_mode", "synchronous", "temp_store_directory",
                              "data_store_directory", "writable_schema", "mmap_size"})

#: one statement's outcome on the wire: ``[columns, rows, meta]``
Outcome = list[Any]

#: D1's limit on one query's duration (https://developers.cloudflare.com/d1/platform/limits/)
DEFAULT_QUERY_TIMEOUT = 30.0
#: SQLite VM instructions between two looks at the clock (about a millisecond of work)
_PROGRESS_STEPS = 50_000
#: how long a call may hold the host's event loop before it moves to its database's thread
INLINE_BUDGET_S = 0.01


def query_timeout() -> float:
    """Seconds one statement may run; ``EDGELET_D1_QUERY_TIMEOUT`` overrides (tests)."""
    return seconds_from_env("EDGELET_D1_QUERY_TIMEOUT", DEFAULT_QUERY_TIMEOUT, log)


@dataclass
class RowCap:
    """At most ``rows`` rows and about ``bytes`` bytes of values per statement, for readers
    that show results rather than compute with them (the control API, the explorer).

    Why: the host holds a statement's whole result in memory, then as JSON; ``SELECT *`` over a
    large table (or a recursive CTE without an end) would grow without bound and stall every
    Worker on the event loop. Reading stops at the cap and the statement's index is recorded
    in ``truncated``; writes are unaffected (SQLite makes a statement's changes, RETURNING
    included, before it yields its first row)."""

    rows: int
    bytes: int
    #: 0-based indexes of the statements whose rows were cut short
    truncated: list[int] = field(default_factory=list)


def _cell_bytes(value: Any) -> int:
    """About what ``value`` costs in the answer: its length for text and BLOBs, 8 otherwise."""
    return len(value) if isinstance(value, (str, bytes)) else 8


def _capped_rows(cur: sqlite3.Cursor, cap: RowCap, index: int) -> list[Any]:
    rows: list[Any] = []
    size = 0
    while True:
        batch = cur.fetchmany(256)
        if not batch:
            return rows
        for row in batch:
            size += sum(_cell_bytes(v) for v in row)
            if len(rows) >= cap.rows or size > cap.bytes:
                cur.close()  # resets the statement: nothing stays pending in the transaction
                cap.truncated.append(index)
                return rows
            rows.append(row)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """``fn`` on ``loop`` from another thread; nothing once the loop has closed (a stop)."""
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:
        pass


def file_name(database_id: str) -> str:
    """The file a database id is stored in: the id itself when it is a safe name (UUIDs
    are), else a readable prefix plus a hash, so no id can escape the ``d1`` folder."""
    if _SAFE_ID.match(database_id) and database_id not in (".", ".."):
        return f"{database_id}.sqlite3"
    digest = hashlib.sha256(database_id.encode("utf-8")).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", database_id)[:40].strip("_") or "db"
    return f"{stem}-{digest}.sqlite3"


def connect(path: Path | None) -> sqlite3.Connection:
    """A connection with the platform's durability settings (WAL survives kill -9)."""
    from edgelet.state import open_database  # the header check and clear errors of every store
    conn = open_database(path)
    conn.execute("PRAGMA foreign_keys=ON")  # D1 enforces foreign keys
    return conn


def _sqlite_error(exc: sqlite3.Error, where: str, sql: str, denied: str | None) -> D1Error:
    """SQLite's error in D1's words: ``D1_ERROR: <sqlite message>: <SQLITE_CODE>``."""
    if denied:
        return D1Error(f"D1_ERROR: {denied} ({where}): SQLITE_AUTH")
    code = getattr(exc, "sqlite_errorname", None)
    message = str(exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement at a time" in message:
        message = ("the SQL holds more than one statement; prepare() takes one statement "
                   "(run several with exec() or batch())")
    elif isinstance(exc, sqlite3.ProgrammingError) and "number of bindings" in message:
        message = f"wrong number of parameter bindings for the SQL query ({message})"
    elif code == "SQLITE_TOOBIG" or "too big" in message:
        code = "SQLITE_TOOBIG"
        message = (f"{message}: D1 stores at most {limits.MAX_VALUE_BYTES:,} bytes per string, BLOB or row "
                   f"(nothing was written); keep large values in R2 and store their key")
    shown = " ".join(sql.split())
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return D1Error(f"D1_ERROR: {message}: {code or 'SQLITE_ERROR'} [{where}; SQL: {shown}]")


class D1Database:
    """One database: its connection, and the statement runner with D1's result meta."""

    def __init__(self, database_id: str, path: Path | None) -> None:
        self.id = database_id
        self.path = path
        self.conn = connect(path)
        #: commits made through this host since start; the ``withSession`` bookmark
        self.commits = 0
        self._epoch = int(time.time())
        self._guard = False
        self._denied: str | None = None
        self._size: int | None = None  # cached: only a write can change it
        self.conn.set_authorizer(self._authorize)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.MAX_VALUE_BYTES)
        #: seconds one statement may run (D1's query limit)
        self.timeout = query_timeout()
        #: time.monotonic() past which the running statement is interrupted (inf: none runs)
        self._deadline = float("inf")
        self.conn.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
        #: the one thread this database's calls run on (see submit), made on first use
        self._thread: ThreadPoolExecutor | None = None
        #: calls sent to the thread and not yet answered (while any are, none runs inline)
        self._queued = 0
        #: time.monotonic() past which a call running inline moves to the thread
        self._inline_until = float("inf")
        self._moved = False

    # -- where calls run -------------------------------------------------------------
    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)``, in order with the calls submitted before it, one at a time.

        Why not simply on the event loop: a statement may run for long (up to ``timeout``),
        and there it would stop every Worker, the control API and Ctrl-C. Why not always on
        the database's thread: the hop costs more than a typical query (~70 us against ~15).
        So a call runs inline while the database is idle, for at most ``INLINE_BUDGET_S``: a
        statement still running then is interrupted (SQLite undoes it, and a batch's
        transaction is rolled back) and the call runs again, whole, on the database's one
        thread, where the calls after it queue. Nothing of the first try is kept, and no
        other call ran between, so the second is the only one that counts."""
        if not self._queued:
            self._moved = False
            self._inline_until = time.monotonic() + INLINE_BUDGET_S
            try:
                result = fn(*args)
            except BaseException:
                if not self._moved:
                    raise
            else:
                if not self._moved:
                    return result
            finally:
                self._inline_until = float("inf")
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"d1 {self.id[:24]}")
        loop = asyncio.get_running_loop()
        job = self._thread.submit(fn, *args)
        self._queued += 1
        # counted down when the thread is done with it, not when the caller stops waiting
        # (a cancelled caller must not let the next call run inline beside it)
        job.add_done_callback(lambda _: _call_soon(loop, self._unqueue))
        return await asyncio.wrap_future(job)

    def _unqueue(self) -> None:
        self._queued -= 1

    def _past_deadline(self) -> bool:
        """SQLite's progress handler: True interrupts the statement (SQLITE_INTERRUPT), at
        D1's query limit, or when an inline call has had its share of the event loop."""
        now = time.monotonic()
        if now > self._inline_until:
            self._moved = True
            return True
        return now > self._deadline

    # -- the guard around user SQL ---------------------------------------------------
    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                   source: str | None) -> int:
        if not self._guard:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self._denied = "ATTACH and DETACH are not allowed in D1; each binding reaches one database"
        elif action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            self._denied = _NO_TRANSACTIONS
        elif action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _REFUSED_PRAGMAS:
            self._denied = f"PRAGMA {arg1} is not allowed in D1 (the platform manages it)"
        else:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def bookmark(self) -> str:
        return f"{self._epoch:08x}-{self.commits:08x}-00000000-{hashlib.sha1(self.id.encode()).hexdigest()[:32]}"

    def size(self) -> int:
        page_count = self.conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int(page_count) * int(page_size)

    # -- running statements ------------------------------------------------------------
    def _one(self, sql: str, params: list[Any], where: str, cap: RowCap | None = None, index: int = 0) -> Outcome:
        limits.check_statement(sql, where)
        values = limits.check_params(params, where)
        if _VACUUM.match(sql):
            raise D1Error(f"D1_ERROR: VACUUM is not allowed in D1 ({where}): SQLITE_AUTH")
        if _TRANSACTION.match(sql):  # also caught by the authorizer, unless SQLite cached our own BEGIN
            raise D1Error(f"D1_ERROR: {_NO_TRANSACTIONS} ({where}): SQLITE_AUTH")
        started = time.perf_counter()
        before = self.conn.total_changes
        self._denied = None
        self._guard = True
        self._deadline = time.monotonic() + self.timeout
        try:
            cur = self.conn.execute(sql, values)
            rows = cur.fetchall() if cap is None else _capped_rows(cur, cap, index)
        except sqlite3.Error as exc:
            if time.monotonic() > self._deadline and getattr(exc, "sqlite_errorname", "") == "SQLITE_INTERRUPT":
                raise self._timed_out(where, sql) from None
            raise _sqlite_error(exc, where, sql, self._denied) from None
        finally:
            self._guard = False
            self._deadline = float("inf")
        columns = [d[0] for d in cur.description] if cur.description else []
        written = self.conn.total_changes - before
        changes = max(cur.rowcount, 0)
        meta = {
            "served_by": "edgelet",
            "served_by_primary": True,
            "duration": (time.perf_counter() - started) * 1000.0,
            "changes": changes,
            "last_row_id": cur.lastrowid or 0,
            "changed_db": written > 0 or bool(_DDL.match(sql)),
            "size_after": 0,
            "rows_read": len(rows) + changes,
            "rows_written": written,
        }
        return [columns, [list(r) for r in rows], meta]

    def _timed_out(self, where: str, sql: str) -> D1Error:
        """D1's words for a query past its limit, then which database, statement and limit."""
        shown = " ".join(sql.split())
        if len(shown) > 200:
            shown = shown[:197] + "..."
        return D1Error(f"D1_ERROR: D1 DB exceeded its CPU time limit and was reset. ({where} on D1 database "
                       f"{self.id!r}: the statement ran longer than {self.timeout:g} s, D1's limit for one query, "
                       f"and was interrupted; nothing it wrote was kept. Bound it (a LIMIT, or a WHERE that ends "
                       f"a recursive CTE) or split the work; EDGELET_D1_QUERY_TIMEOUT sets the limit locally) "
                       f"[SQL: {shown}]")

    def run(self, statements: list[tuple[str, list[Any]]], where: str,
            progress: Callable[[int], None] | None = None, cap: RowCap | None = None) -> list[Outcome]:
        """Run statements in order, all or nothing; D1Error (nothing stored) on any failure.

        ``progress(n)`` is told after each statement (``d1 execute --file`` draws a bar);
        ``cap`` bounds the rows each statement returns (see :class:`RowCap`)."""
        if not statements:
            raise D1Error(f"D1_ERROR: No SQL statements detected ({where}).")
        if len(statements) == 1:
            outcomes = [self._one(statements[0][0], statements[0][1], where, cap)]
        else:
            outcomes = []
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for i, (sql, params) in enumerate(statements, 1):
                    outcomes.append(self._one(sql, params, f"{where}, statement {i} of {len(statements)}", cap,
                                              i - 1))
                    if progress is not None:
                        progress(i)
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._finish(outcomes)
        return outcomes

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _finish(self, outcomes: list[Outcome]) -> None:
        changed = any(o[2]["changed_db"] for o in outcomes)
        if changed:
            self.commits += 1
        if changed or self._size is None:
            self._size = self.size()
        size = self._size
        for o in outcomes:
            o[2]["size_after"] = size

    def exec(self, script: str, where: str) -> dict[str, Any]:
        """``env.DB.exec(sql)``: every ``;``-separated statement, in one transaction."""
        if not isinstance(script, str):
            raise TypeError(f"{where}: the SQL must be a str, got {type(script).__name__}")
        statements = split_statements(script)
        if not statements:
            raise D1Error(f"D1_ERROR: No SQL statements detected ({where}).")
        started = time.perf_counter()
        outcomes = self.run([(s, []) for s in statements], where)
        return {"count": len(outcomes), "duration": (time.perf_counter() - started) * 1000.0}

    def dump(self) -> bytes:
        """The database file's bytes (a consistent snapshot, WAL included)."""
        return self.conn.serialize()

    def close(self) -> None:
        """Interrupt what runs (a Ctrl-C must not wait for a long query), let the thread end,
        then close the connection."""
        if self._thread is not None:
            self.conn.interrupt()
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None
        try:
            self.conn.close()
        except sqlite3.Error:  # pragma: no cover - closing never loses committed data
            pass


class D1Store:
    """Every D1 database of the platform, opened on first use."""

    def __init__(self, state_dir: Path | None) -> None:
        #: ``<state>/d1``, or None in memory
        self.folder = None if state_dir is None else state_dir / "d1"
        self._open: dict[str, D1Database] = {}

    def path_for(self, database_id: str) -> Path | None:
        return None if self.folder is None else self.folder / file_name(database_id)

    def get(self, database_id: str) -> D1Database:
        db = self._open.get(database_id)
        if db is None:
            db = self._open[database_id] = D1Database(database_id, self.path_for(database_id))
        return db

    def close(self) -> None:
        for db in self._open.values():
            db.close()
        self._open.clear()

    # -- the wire ----------------------------------------------------------------------
    async def acall(self, database_id: str, where: str, method: str, args: list[Any]) -> Any:
        """``call`` on the database's own thread (see ``D1Database.submit``): what Workers,
        the control API and the test handle use while the host's loop runs."""
        return await self.get(database_id).submit(self.call, database_id, where, method, args)

    def call(self, database_id: str, where: str, method: str, args: list[Any]) -> Any:
        """Answer one wire call (see ``api.D1DatabaseAPI``): data in, data out."""
        db = self.get(database_id)
        if method == "query":
            statements = args[0]
            if len(args) > 1 and isinstance(args[1], str):
                where = f"{where}.{args[1]}()"
            if not isinstance(statements, list):
                raise TypeError(f"{where}: statements must be a list")
            pairs = []
            for item in statements:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise TypeError(f"{where}: each statement must be [sql, params]")
                pairs.append((item[0], item[1]))
            return {"results": db.run(pairs, where), "bookmark": db.bookmark()}
        if method == "exec":
            return db.exec(args[0], f"{where}.exec()")
        if method == "dump":
            return db.dump()
        raise LookupError(f"{where}: D1 has no method {method!r}")
