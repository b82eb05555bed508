"""``ctx.storage.sql``: the object's own SQLite database, synchronous as in Cloudflare.

``exec`` runs the statement(s) at once and returns a cursor over the rows of the last one
(reading them all up front: a cursor kept across an ``await`` then still sees the rows of
its own moment, and ``rowsWritten`` is right as soon as ``exec`` returns). Transactions
go through ``storage.transaction()``: explicit ``BEGIN``/``COMMIT``/``SAVEPOINT`` would fight
the platform's own and are refused.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from edgelet.runtime.jstypes import JsObject

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.durable_objects.isolate.storage import DurableObjectStorage

#: the largest string, BLOB or row SQL may store (durable-objects/platform/limits: 2 MB),
#: set as SQLite's SQLITE_LIMIT_LENGTH on every object database
MAX_SQL_VALUE_BYTES = 2_000_000
_TXN_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*([A-Za-z]+)", re.S)


def split_statements(query: str) -> list[str]:
    """The statements of ``query`` in order (SQLite decides where each one ends)."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(query):
        if ch == ";" and sqlite3.complete_statement(query[start:i + 1]):
            statement = query[start:i + 1].strip()
            if statement.rstrip(";").strip():
                out.append(statement)
            start = i + 1
    rest = query[start:].strip()
    if rest and not _only_comments(rest):
        out.append(rest)
    return out


def _only_comments(text: str) -> bool:
    stripped = re.sub(r"--[^\n]*(\n|$)|/\*.*?\*/", "", text, flags=re.S)
    return not stripped.strip()


def _check_statement(statement: str) -> None:
    match = _FIRST_WORD.match(statement)
    if match and match.group(1).upper() in _TXN_WORDS:
        raise ValueError(
            f"sql.exec(): {match.group(1).upper()} is not allowed in a Durable Object's SQL; "
            f"to run statements atomically use `await self.ctx.storage.transaction(fn)` or "
            f"`self.ctx.storage.transactionSync(fn)`")


class SqlCursor:
    """Rows of one ``exec``: iterate for dict rows, or ``toArray()``, ``one()``, ``raw()``."""

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]], rows_written: int) -> None:
        self.columnNames = columns  # noqa: N815 - Cloudflare's name
        self._rows = rows
        self._pos = 0
        self.rowsRead = len(rows)  # noqa: N815
        self.rowsWritten = rows_written  # noqa: N815

    @property
    def column_names(self) -> list[str]:
        return self.columnNames

    @property
    def rows_read(self) -> int:
        return self.rowsRead

    @property
    def rows_written(self) -> int:
        return self.rowsWritten

    def _take(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def _as_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row as a dict that also allows attribute access (``cursor.one().value``)."""
        return JsObject(zip(self.columnNames, row, strict=False))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._pos < len(self._rows):
            row = self._rows[self._pos]
            self._pos += 1
            yield self._as_dict(row)

    def next(self) -> dict[str, Any]:
        """Cloudflare's iterator step: ``{"done": bool, "value": row}``."""
        if self._pos < len(self._rows):
            row = self._rows[self._pos]
            self._pos += 1
            return JsObject(done=False, value=self._as_dict(row))
        return JsObject(done=True)

    def toArray(self) -> list[dict[str, Any]]:  # noqa: N802
        """Every remaining row as a dict (column name -> value)."""
        return [self._as_dict(r) for r in self._take()]

    to_array = toArray

    def one(self) -> dict[str, Any]:
        """The only row; raises unless the query returned exactly one."""
        rows = self._take()
        if len(rows) != 1:
            got = "no results" if not rows else f"{len(rows)} results"
            raise ValueError(f"cursor.one(): expected exactly one result from the SQL query, "
                             f"but got {got}; use toArray() for any number of rows")
        return self._as_dict(rows[0])

    def raw(self) -> Iterator[list[Any]]:
        """The remaining rows as lists of values, without column names."""
        for row in self._take():
            yield list(row)

    def __repr__(self) -> str:
        return f"<SqlCursor columns={self.columnNames} rows={len(self._rows)}>"


class SqlStorage:
    """``self.ctx.storage.sql``: ``exec(query, *bindings)`` (not awaited) and ``databaseSize``."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run ``query``; with several statements, bindings apply to the last one."""
        if not isinstance(query, str):
            raise TypeError(f"sql.exec() takes the SQL text as a str, got {type(query).__name__}")
        statements = split_statements(query)
        if not statements:
            raise ValueError("sql.exec(): the query is empty")
        for statement in statements:
            _check_statement(statement)
        storage = self._storage
        storage._check_sync("sql.exec()")
        # in the turn's transaction with the other writes; PRAGMA and VACUUM run outside
        # one (some PRAGMAs and VACUUM fail inside a transaction)
        match = _FIRST_WORD.match(statements[0])
        first = match.group(1).upper() if match else ""
        conn = storage._db() if first in ("PRAGMA", "VACUUM") else storage._begin()
        before = conn.total_changes
        storage._user_sql = True
        storage._denied = None
        done = 0
        try:
            for statement in statements[:-1]:
                conn.execute(statement).fetchall()
                done += 1
            cur = conn.execute(statements[-1], bindings)
            rows = cur.fetchall()
            columns = [d[0] for d in cur.description] if cur.description else []
        except sqlite3.Error as exc:
            hint = ""
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_TOOBIG" or "too big" in str(exc):
                hint = (f"; a string, BLOB or row holds at most {MAX_SQL_VALUE_BYTES:,} bytes, as on "
                        f"Cloudflare (nothing was written by this statement): keep large values in R2")
            raise type(exc)(_failure(exc, storage._denied, query, done, len(statements)) + hint) from None
        finally:
            storage._user_sql = False
        return SqlCursor(columns, rows, conn.total_changes - before)

    @property
    def databaseSize(self) -> int:  # noqa: N802
        """Bytes the database takes (pages in use times the page size)."""
        conn = self._storage._db()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    database_size = databaseSize

    def __repr__(self) -> str:
        return "<SqlStorage>"


def _failure(exc: sqlite3.Error, denied: str | None, query: str, done: int, total: int) -> str:
    """SQLite's message (or why the platform refused the statement), where, and, for a
    script, what of it stayed applied: like Cloudflare, the statements before a failing
    one are not undone."""
    text = f"{denied or exc} (in SQL: {_short(query)})"
    if total > 1:
        kept = ("nothing before it was applied" if done == 0 else
                f"the {done} statement{'s' if done > 1 else ''} before it stayed applied, as on "
                f"Cloudflare; for all or nothing run them inside storage.transactionSync()")
        text = f"statement {done + 1} of {total} failed: {text}; {kept}"
    return text


def _short(query: str) -> str:
    text = " ".join(query.split())
    return text if len(text) <= 200 else text[:197] + "..."
