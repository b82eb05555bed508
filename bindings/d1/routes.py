"""D1's control API, shaped after Cloudflare's REST API (``/accounts/{id}/d1/database/...``).

``{database}`` is a database id, a ``database_name`` or a binding name. ``query`` answers
one result per statement (``{results, success, meta}``), all run in one transaction;
``raw`` answers ``{results: {columns, rows}, ...}`` as Cloudflare's ``/raw`` does. Each
result also says ``truncated``: a statement returns at most ``MAX_ROWS`` rows or ``MAX_BYTES``
of values here; a cut one carries ``truncation: {rows, message}`` (null otherwise), and the
envelope's ``messages`` repeat each message for clients that read only those.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from edgelet.api import ApiError, api_route, json_body, ok
from edgelet.bindings.d1.errors import D1Error
from edgelet.bindings.d1.registry import DatabaseEntry, describe
from edgelet.bindings.d1.sqltext import drop_dump_wrapper, split_statements
from edgelet.bindings.d1.storage import RowCap
from edgelet.openapi import ANY_JSON, OBJECT, OBJECT_LIST, STRING, Op, route

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.d1.plugin import Plugin

#: Cloudflare's code for a failed query
QUERY_ERROR = 7500
#: what one statement may return through the control API: rows, and bytes of text/BLOB values
#: (numbers count 8); past either, the rows read so far come back marked ``truncated``
MAX_ROWS = 10_000
MAX_BYTES = 8 * 1024 * 1024
#: the code of the message that says a result was cut short (edgelet's own)
TRUNCATED = 7501


def truncation_message(index: int, returned: int) -> str:
    """What statement ``index`` (0-based) returned of its rows, why, and how to see the rest."""
    return (f"statement {index + 1}: only its first {returned:,} rows are returned; the control "
            f"API returns at most {MAX_ROWS:,} rows or {MAX_BYTES // (1024 * 1024)} MiB of values per "
            f"statement. Page with LIMIT and OFFSET, or select fewer columns")


def capped_answer(results: list[dict[str, Any]], outcomes: list[list[Any]], cap: RowCap) -> Response:
    """``results`` (one per statement of ``outcomes``) marked where ``cap`` cut them: each
    result's own ``truncated`` and ``truncation`` (``{rows, message}`` or null; the explorer
    reads it there rather than parsing message text) plus one envelope message per cut
    statement (code 7501), for clients that read the envelope."""
    messages: list[dict[str, Any]] = []
    for i, result in enumerate(results):
        result["truncated"] = i in cap.truncated
        result["truncation"] = None
    for i in cap.truncated:
        returned = len(outcomes[i][1])
        message = truncation_message(i, returned)
        results[i]["truncation"] = {"rows": returned, "message": message}
        messages.append({"code": TRUNCATED, "message": message})
    return ok(results, messages=messages)


def routes(plugin: Plugin) -> list[BaseRoute]:
    async def info(entry: DatabaseEntry) -> dict[str, Any]:
        """On the database's thread, behind a Worker's query that may be running (storage.py)."""
        assert plugin.store is not None
        db = plugin.store.get(entry.id)
        return await db.submit(describe, entry, db.conn, db.path)

    async def list_databases(request: Request) -> Response:
        return ok([await info(e) for e in plugin.databases()])

    async def get_database(request: Request) -> Response:
        return ok(await info(plugin.resolve(request.path_params["database"])))

    async def _statements(request: Request) -> tuple[DatabaseEntry, list[tuple[str, list[Any]]]]:
        """``{sql, params}`` (one or more statements) or ``{batch: [{sql, params}, ...]}``."""
        entry = plugin.resolve(request.path_params["database"])
        body = await json_body(request, required=True)
        if "batch" in body:
            items = body["batch"]
            if not isinstance(items, list) or not items:
                raise ApiError(400, 7400, "batch must be a non-empty list of {\"sql\", \"params\"} objects")
            out: list[tuple[str, list[Any]]] = []
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ApiError(400, 7400, f"batch[{i}] must be an object with sql and params")
                out += _split(item, f"batch[{i}]")
            return entry, out
        return entry, _split(body, "the body")

    def _split(body: dict[str, Any], what: str) -> list[tuple[str, list[Any]]]:
        sql, params = body.get("sql"), body.get("params") or []
        if not isinstance(sql, str) or not sql.strip():
            raise ApiError(400, 7400, f"{what}: send {{\"sql\": \"...\", \"params\": [...]}} with the SQL "
                                      f"as a non-empty string")
        if not isinstance(params, list):
            raise ApiError(400, 7400, f"{what}: params must be a list of values for the ? placeholders")
        statements = drop_dump_wrapper(split_statements(sql))
        if not statements:
            raise ApiError(400, 7400, f"{what}: the SQL holds no statements (only comments or whitespace)")
        if params and len(statements) > 1:
            raise ApiError(400, 7400, f"{what}: params apply to one statement, but the SQL holds "
                                      f"{len(statements)}; send them one at a time")
        return [(s, params if i == 0 else []) for i, s in enumerate(statements)]

    async def _run(entry: DatabaseEntry, statements: list[tuple[str, list[Any]]], label: str,
                   cap: RowCap) -> list[list[Any]]:
        assert plugin.store is not None
        db = plugin.store.get(entry.id)
        try:
            return await db.submit(partial(db.run, cap=cap), statements, f"{label} on D1 database {entry.name!r}")
        except D1Error as exc:
            raise ApiError(400, QUERY_ERROR, str(exc)) from None

    async def query(request: Request) -> Response:
        entry, statements = await _statements(request)
        cap = RowCap(MAX_ROWS, MAX_BYTES)
        outcomes = await _run(entry, statements, "POST query", cap)
        return capped_answer([{"results": [dict(zip(cols, row, strict=False)) for row in rows], "success": True,
                               "meta": meta} for cols, rows, meta in outcomes], outcomes, cap)

    async def raw(request: Request) -> Response:
        entry, statements = await _statements(request)
        cap = RowCap(MAX_ROWS, MAX_BYTES)
        outcomes = await _run(entry, statements, "POST raw", cap)
        return capped_answer([{"results": {"columns": cols, "rows": rows}, "success": True, "meta": meta}
                              for cols, rows, meta in outcomes], outcomes, cap)

    async def dump(request: Request) -> Response:
        assert plugin.store is not None
        entry = plugin.resolve(request.path_params["database"])
        db = plugin.store.get(entry.id)
        data = await db.submit(db.dump)
        return Response(data, media_type="application/vnd.sqlite3",
                        headers={"content-disposition": f'attachment; filename="{entry.name}.sqlite3"'})

    def database_names() -> list[str]:
        return sorted({n for e in plugin.databases() for n in (e.id, e.name)})

    names = {"database": database_names}
    statement = {"type": "object", "required": ["sql"],
                 "properties": {"sql": STRING, "params": {"type": "array", "items": ANY_JSON}}}
    body = {"oneOf": [statement, {"type": "object", "required": ["batch"],
                                  "properties": {"batch": {"type": "array", "items": statement}}}]}
    return [
        route("/d1/database", api_route(list_databases), GET=Op(
            "D1 databases of every Worker, with their bindings and size", result=OBJECT_LIST, errors=())),
        route("/d1/database/{database}", api_route(get_database), names=names, GET=Op(
            "One database by id, database_name or binding", result=OBJECT)),
        route("/d1/database/{database}/query", api_route(query), names=names, POST=Op(
            "Run SQL (one or more statements, or a batch) in one transaction; one result per statement",
            body=body, body_required=True, result=OBJECT_LIST)),
        route("/d1/database/{database}/raw", api_route(raw), names=names, POST=Op(
            "As query, with rows as lists and the column names apart", body=body, body_required=True,
            result=OBJECT_LIST)),
        route("/d1/database/{database}/dump", api_route(dump), names=names, GET=Op(
            "The database file's bytes", media="application/vnd.sqlite3")),
    ]
