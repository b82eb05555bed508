"""The D1 API a Worker sees (``env.DB.prepare/batch/exec/dump/withSession``), transport-free.

Why a base class with an abstract ``_call``: the Worker's binding (over the isolate channel)
and the host-side test handle (``p.d1("DB")``, straight onto storage) must take the same
arguments and give the same shapes, so both subclass :class:`D1DatabaseAPI` and differ only
in how a call travels.

Wire calls (data only): ``query [[[sql, params], ...], api_method]`` -> ``{results: [[columns, rows,
meta], ...], bookmark}``; ``exec [sql]`` -> ``{count, duration}``; ``dump []`` -> bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgelet.bindings.d1.errors import D1Error
from edgelet.bindings.d1.limits import check_bind_value
from edgelet.runtime.jstypes import JsObject

__all__ = ["D1DatabaseAPI", "D1DatabaseSession", "D1Error", "D1PreparedStatement", "Row"]

_CONSTRAINTS = ("first-primary", "first-unconstrained")


class Row(JsObject):
    """A dict whose items are also attributes (``row.value``), as D1 rows are objects in JS
    (:class:`edgelet.runtime.jstypes.JsObject`: columns win over dict methods of the same name)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no column or field {name!r}; it has: {', '.join(map(str, self))}")

    def to_py(self) -> dict[str, Any]:
        """A plain dict, for code written against Pyodide's ``JsProxy.to_py()``."""
        return {k: (v.to_py() if isinstance(v, (Row, RowList)) else v) for k, v in self.items()}


class RowList(list[Any]):
    """``results`` of a query: a list of rows, with ``to_py()`` for Pyodide-style code."""

    def to_py(self) -> list[Any]:
        return [r.to_py() if isinstance(r, (Row, RowList)) else r for r in self]


def _result(outcome: list[Any]) -> Row:
    columns, rows, meta = outcome
    # Row(zip(...)) rather than a dict comprehension: the common path of every query
    results = RowList(Row(zip(columns, row, strict=False)) for row in rows)
    return Row(results=results, success=True, meta=Row(meta))


class D1PreparedStatement:
    """``env.DB.prepare(sql)``: a statement with its bound values; ``bind`` makes a new one."""

    __slots__ = ("_owner", "_sql", "_params")

    def __init__(self, owner: _Queries, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._owner = owner
        self._sql = sql
        self._params = params

    @property
    def statement(self) -> str:
        return self._sql

    @property
    def params(self) -> list[Any]:
        return list(self._params)

    def bind(self, *values: Any) -> D1PreparedStatement:
        """A new statement with ``values`` bound to ``?``/``?NNN``, in order (type-checked)."""
        where = f"{self._owner._label}.prepare(...).bind()"
        checked = tuple(check_bind_value(v, i, where) for i, v in enumerate(values, 1))
        return D1PreparedStatement(self._owner, self._sql, checked)

    async def _run(self, method: str) -> Row:
        return (await self._owner._query([self], method))[0]

    async def all(self) -> Row:
        """``{results: [rows], success: True, meta: {...}}``."""
        return await self._run("all")

    async def run(self) -> Row:
        """Like ``all()`` (Cloudflare's ``run`` returns the same shape since 2024)."""
        return await self._run("run")

    async def first(self, column: str | None = None, /, **kwargs: Any) -> Any:
        """The first row (a dict), that row's ``column``, or None when there are no rows."""
        column = kwargs.pop("colName", kwargs.pop("column", column))
        if kwargs:
            raise TypeError(f"first() got unexpected arguments {', '.join(kwargs)}; pass a column name")
        rows = (await self._run("first"))["results"]
        if not rows:
            return None
        if column is None:
            return rows[0]
        if column not in rows[0]:
            raise D1Error(f"D1_COLUMN_NOTFOUND: Column not found ({column}); the query returns "
                          f"{', '.join(rows[0]) or 'no columns'}")
        return rows[0][column]

    async def raw(self, options: Any = None, /, **kwargs: Any) -> list[list[Any]]:
        """Rows as lists of values; with ``columnNames=True`` the column names come first."""
        opts = dict(options or {}) if not isinstance(options, bool) else {"columnNames": options}
        opts.update(kwargs)
        want_names = bool(opts.pop("columnNames", opts.pop("column_names", False)))
        if opts:
            raise TypeError(f"raw() got unknown options {', '.join(opts)}; accepted: columnNames")
        outcome = (await self._owner._query_raw([self], "raw"))[0]
        columns, rows = outcome[0], outcome[1]
        return [list(columns), *rows] if want_names else list(rows)

    def __repr__(self) -> str:
        return f"<D1PreparedStatement {self._sql[:60]!r} params={len(self._params)}>"


class _Queries:
    """What statements need from their database or session: a label and ``_query``."""

    _label: str
    _api: D1DatabaseAPI

    def prepare(self, query: str) -> D1PreparedStatement:
        """A statement for ``query`` (one SQL statement, ``?`` placeholders)."""
        if not isinstance(query, str):
            raise TypeError(f"{self._label}.prepare() takes the SQL as a str, got {type(query).__name__}")
        return D1PreparedStatement(self, query)

    async def batch(self, statements: Iterable[D1PreparedStatement]) -> list[Row]:
        """Run ``statements`` in one transaction: every result, or an error and nothing stored."""
        if isinstance(statements, D1PreparedStatement) or not isinstance(statements, Iterable):
            raise TypeError(f"{self._label}.batch() takes a list of prepared statements")
        stmts = list(statements)
        for i, s in enumerate(stmts, 1):
            if not isinstance(s, D1PreparedStatement):
                raise TypeError(f"{self._label}.batch(): item {i} is a {type(s).__name__}, not a statement "
                                f"from {self._label}.prepare()")
            if s._owner._api is not self._api:
                raise TypeError(f"{self._label}.batch(): statement {i} was prepared on "
                                f"{s._owner._label}; a batch runs on one database")
        return await self._query(stmts, "batch")

    async def _query(self, stmts: list[D1PreparedStatement], method: str) -> list[Row]:
        return [_result(o) for o in await self._query_raw(stmts, method)]

    async def _query_raw(self, stmts: list[D1PreparedStatement], method: str) -> list[list[Any]]:
        answer = await self._api._call("query", [[s._sql, list(s._params)] for s in stmts], method)
        self._seen(answer.get("bookmark"))
        return answer["results"]

    def _seen(self, bookmark: str | None) -> None:
        """A query answered at ``bookmark`` (sessions remember the latest)."""


class D1DatabaseSession(_Queries):
    """``env.DB.withSession(...)``: ``prepare``/``batch`` plus ``getBookmark()``.

    edgelet has one copy of each database, so every session is sequentially consistent by
    construction; the bookmark is the database's commit position, as in Cloudflare.
    """

    def __init__(self, api: D1DatabaseAPI, constraint_or_bookmark: str | None) -> None:
        self._api = api
        self._label = f"{api._label}.withSession()"
        self._bookmark = None if constraint_or_bookmark in (None, *_CONSTRAINTS) else constraint_or_bookmark

    def getBookmark(self) -> str | None:  # noqa: N802 - Cloudflare's name
        """The bookmark of the latest query in this session (None before the first)."""
        return self._bookmark

    get_bookmark = getBookmark

    def _seen(self, bookmark: str | None) -> None:
        if bookmark is not None and (self._bookmark is None or bookmark > self._bookmark):
            self._bookmark = bookmark

    def __repr__(self) -> str:
        return f"<D1DatabaseSession {self._label} bookmark={self._bookmark!r}>"


class D1DatabaseAPI(_Queries):
    """``env.<binding>`` for a D1 database; subclasses say how ``_call`` reaches the host."""

    def __init__(self, label: str) -> None:
        #: how messages name this binding, e.g. ``env.DB``
        self._label = label
        self._api = self

    async def _call(self, method: str, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    async def exec(self, query: str) -> Row:
        """Run every ``;``-separated statement of ``query`` (one transaction): ``{count, duration}``."""
        if not isinstance(query, str):
            raise TypeError(f"{self._label}.exec() takes the SQL as a str, got {type(query).__name__}")
        return Row(await self._call("exec", query))

    async def dump(self) -> bytes:
        """The database as a SQLite file's bytes."""
        return bytes(await self._call("dump"))

    def withSession(self, constraint_or_bookmark: str | None = None) -> D1DatabaseSession:  # noqa: N802
        """A session: ``"first-primary"``, ``"first-unconstrained"`` or a bookmark from ``getBookmark()``."""
        if constraint_or_bookmark is not None and not isinstance(constraint_or_bookmark, str):
            raise TypeError(f"{self._label}.withSession() takes a constraint or bookmark str, got "
                            f"{type(constraint_or_bookmark).__name__}")
        return D1DatabaseSession(self, constraint_or_bookmark)

    with_session = withSession

    def __repr__(self) -> str:
        return f"<D1 database {self._label}>"
