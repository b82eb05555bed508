"""SQL text helpers: splitting a script into statements, and wrangler's export format.

Why our own splitter: ``exec``, ``d1 execute --file`` and migrations run a script one
statement at a time (so progress can be shown and an error can name the statement), and
``sqlite3.complete_statement`` already knows where SQLite ends a statement (strings,
quoted names, comments and ``CREATE TRIGGER ... BEGIN ... END;`` included).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator

_COMMENTS = re.compile(r"--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)", re.S)
#: the transaction wrapper of ``sqlite3 .dump`` output, which D1 runs itself
_DUMP_WRAPPER = re.compile(r"^\s*(BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?|COMMIT(\s+TRANSACTION)?"
                           r"|END(\s+TRANSACTION)?)\s*;?\s*$", re.I)


def only_comments(text: str) -> bool:
    return not _COMMENTS.sub("", text).strip()


def split_statements(script: str) -> list[str]:
    """The statements of ``script`` in order, each with its ``;`` (comments kept)."""
    out: list[str] = []
    start = 0
    pos = script.find(";")
    while pos != -1:
        if sqlite3.complete_statement(script[start:pos + 1]):
            statement = script[start:pos + 1].strip()
            if not only_comments(statement.rstrip(";")):
                out.append(statement)
            start = pos + 1
        pos = script.find(";", pos + 1)
    rest = script[start:].strip()
    if rest and not only_comments(rest):
        out.append(rest)
    return out


def drop_dump_wrapper(statements: Iterable[str]) -> list[str]:
    """Statements without a ``BEGIN TRANSACTION;`` / ``COMMIT;`` wrapper, as wrangler
    strips them from ``sqlite3 .dump`` files: the whole file already runs in one transaction."""
    return [s for s in statements if not _DUMP_WRAPPER.match(_COMMENTS.sub("", s))]


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def export_sql(conn: sqlite3.Connection, *, tables: list[str] | None = None, schema: bool = True,
               data: bool = True, skip_tables: Iterable[str] = ()) -> Iterator[str]:
    """Lines of a SQL dump in wrangler's ``d1 export`` shape: a ``PRAGMA defer_foreign_keys``
    header, then each table's ``CREATE`` and ``INSERT``s, then indexes, triggers and views.

    ``tables`` limits the dump to those tables (an unknown one is a ValueError naming it).
    """
    skip = set(skip_tables)
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY rowid").fetchall()
    known = [r[1] for r in rows if r[0] == "table"]
    if tables:
        missing = [t for t in tables if t not in known]
        if missing:
            raise ValueError(f"no table named {', '.join(map(repr, missing))} in the database; "
                             f"tables: {', '.join(known) or 'none'}")
    wanted = [t for t in (tables or known) if t not in skip]
    yield "PRAGMA defer_foreign_keys=TRUE;"
    for kind, name, _tbl, sql in rows:
        if kind != "table" or name not in wanted:
            continue
        if schema:
            yield f"{sql};" if not sql.rstrip().endswith(";") else sql
        if data:
            cols = [c[1] for c in conn.execute(f"PRAGMA table_info({_name(name)})")]
            if not cols:
                continue
            values = " || ',' || ".join(f"quote({_name(c)})" for c in cols)
            for (line,) in conn.execute(f"SELECT 'INSERT INTO {_name(name).replace(chr(39), chr(39) * 2)} "
                                        f"VALUES(' || {values} || ');' FROM {_name(name)}"):
                yield line
    if schema:
        for kind, _, tbl, sql in rows:
            if kind in ("index", "trigger") and tbl in wanted:
                yield f"{sql};"
            elif kind == "view" and not tables:
                yield f"{sql};"
