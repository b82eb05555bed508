"""Control API under ``/cdn-cgi/edgelet/api/workflows``, in Cloudflare's REST shapes.

``GET /workflows`` · ``GET /workflows/{name}`` · ``POST /workflows/{name}/instances``
(one ``{instance_id?, params?}`` or a list of them) · ``POST .../instances/batch`` ·
``GET .../instances?status=&page=&per_page=`` · ``GET .../instances/{id}`` (with steps;
``latest`` is the newest) · ``PATCH .../instances/{id}/status`` ``{status, from_step?}`` ·
``POST .../instances/{id}/events/{type}`` (the JSON body is the payload) ·
``DELETE .../instances/{id}`` (a finished one). ``?id=`` on the listing keeps ids with that prefix.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from edgelet.api import ApiError, api_route, ok, read_json, store_failure
from edgelet.bindings.workflows import codec, rules, views
from edgelet.openapi import ANY_JSON, OBJECT, OBJECT_LIST, STRING, Op, route

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.workflows.engine import Engine
    from edgelet.bindings.workflows.plugin import Plugin


#: the check's paging: a cursor is an instance's row number (SQLite's largest integer), and a
#: page is at most this many instances (each one is replayed in the Worker's isolate)
_MAX_CURSOR = 2**63 - 1
_MAX_CHECK_PAGE = 1000


def build_routes(plugin: Plugin) -> list[BaseRoute]:
    def engine() -> Engine:
        return plugin._engine()

    def guarded(fn: Any) -> Any:
        """api_route, plus the HTTP status an engine error carries (409 for conflicts)."""
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except RecursionError:
                raise  # bad input, not a conflict: api_route answers 400
            except (ValueError, TypeError, LookupError, RuntimeError) as exc:
                if store_failure(exc) is not None:
                    raise  # the state store failed (a full disk): api_route says so
                status = getattr(exc, "api_status", None)
                if status is None and isinstance(exc, RuntimeError):
                    status = 409
                if status is None:
                    raise
                code = {400: 10400, 404: 10404, 409: 10409}.get(status, 10000 + status)
                raise ApiError(status, code, str(exc.args[0]) if exc.args else str(exc)) from None
        endpoint.__name__ = fn.__name__
        return api_route(endpoint)

    async def list_workflows(request: Request) -> Response:
        e = engine()
        return ok([e.summary(name) for name in sorted(e.defs)])

    async def get_workflow(request: Request) -> Response:
        return ok(engine().summary(request.path_params["name"]))

    async def instances(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            q = request.query_params
            rows, info = engine().list(name, q.get("status") or None, _int(q, "page", 1),
                                       _int(q, "per_page", 50), q.get("id") or None)
            return ok(rows, result_info=info)
        body = await _json(request)
        if isinstance(body, list):
            return ok(_create(engine(), name, body), status=201)
        if not isinstance(body, dict):
            raise ApiError(400, 10001, "send a JSON object {instance_id?, params?} or a list of them")
        return ok(_create(engine(), name, [body])[0], status=201)

    async def batch(request: Request) -> Response:
        body = await _json(request)
        name = request.path_params["name"]
        if isinstance(body, dict):  # {"count", "params"} or {"instances"}: {created, errors}
            from edgelet.bindings.workflows.isolate import batch_items
            instances = body.get("instances")
            if isinstance(instances, list):
                body = {**body, "instances": [
                    {"id": _instance_id(b), "params": b.get("params")}
                    if isinstance(b, dict) else b for b in instances]}
            items, errors = batch_items(f"'{name}'", body)
            result = engine().create_many(name, [(i, p) for i, p in items], trigger="api", errors=errors)
            return ok({"created": [{"id": i, "status": "queued", "workflow_id": name} for i in result["created"]],
                       "errors": result["errors"]}, status=201)
        if not isinstance(body, list):
            raise ApiError(400, 10001, "send a JSON list of {instance_id?, params?} objects")
        return ok(_create(engine(), name, body), status=201)

    async def delete_batch(request: Request) -> Response:
        body = await _json(request)
        ids = body.get("ids") if isinstance(body, dict) else body
        if not isinstance(ids, list):
            raise ApiError(400, 10001, 'send {"ids": ["id", ...]} (at most 100)')
        return ok({"deleted": engine().delete_batch(request.path_params["name"], ids)})

    async def subscribe(request: Request) -> Response:
        """Server-Sent Events: ``id: <eventId>``, ``event: <type>``, ``data: <event JSON>``."""
        name, instance_id = request.path_params["name"], request.path_params["id"]
        q = request.query_params
        cursor = q.get("cursor") or request.headers.get("last-event-id")
        stream = engine().subscribe(name, instance_id, q.get("filter") or None, cursor, batches=True)
        stopping: asyncio.Event | None = getattr(request.app.state, "stopping", None)

        async def body() -> AsyncIterator[bytes]:
            yield b": subscribed\n\n"
            async for batch in _until_stopping(stream, stopping):  # the events already there, in one write
                if batch is None:  # edgelet dev stops: end the stream cleanly, resumable by its ids
                    yield STOPPING_COMMENT
                    return
                yield "".join(f"id: {e['eventId']}\nevent: {e['type']}\n"
                              f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in batch).encode()

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def check(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise ApiError(400, 10001, "the body must be an object {after?, limit?}")
        after, limit = body.get("after", 0), body.get("limit")
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= _MAX_CURSOR:
            raise ApiError(400, 10001, f"after must be a whole number from 0 to {_MAX_CURSOR} (the last "
                                       f"page's next), got {after!r}")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or not 1 <= limit <= _MAX_CHECK_PAGE):
            raise ApiError(400, 10001, f"limit must be a whole number from 1 to {_MAX_CHECK_PAGE}, got {limit!r}")
        return ok(await engine().check(request.path_params["name"], after, limit))

    async def instance(request: Request) -> Response:
        name, instance_id = request.path_params["name"], request.path_params["id"]
        e = engine()
        if instance_id == "latest":
            instance_id = views.latest_id(e.db, name) or instance_id
        if request.method == "DELETE":
            e.delete(name, instance_id)
            return ok(None)
        return ok(e.describe(name, instance_id))

    async def change_status(request: Request) -> Response:
        name, instance_id = request.path_params["name"], request.path_params["id"]
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise ApiError(400, 10001, 'send {"status": "pause" | "resume" | "terminate" | "restart"}')
        e = engine()
        action = body["status"]
        options = {k: v for k, v in body.items() if k != "status"}
        if options and action != "restart":
            raise ApiError(400, 10001, f"unknown field(s) {sorted(options)} for {action!r}; send only "
                                       f'{{"status": "{action}"}}')
        try:
            from_step = rules.restart_from(None, options)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, 10001, str(exc)) from None
        if action == "pause":
            e.pause(name, instance_id)
        elif action == "resume":
            e.resume(name, instance_id)
        elif action == "terminate":
            e.terminate(name, instance_id)
        elif action == "restart":
            e.restart(name, instance_id, from_step)
        else:
            raise ApiError(400, 10001, f"unknown status action {action!r}; use pause, resume, terminate "
                                       f"or restart")
        info = e.status(name, instance_id)
        return ok({"status": info["status"], "timestamp": views.iso(e.clock.now())})

    async def send_event(request: Request) -> Response:
        name, instance_id = request.path_params["name"], request.path_params["id"]
        payload = await read_json(request, what="the event payload")
        engine().send_event(name, instance_id, request.path_params["type"],
                            codec.encode(payload, what="the event payload"))
        return ok(None)

    base = "/workflows"
    create = {"type": "object", "additionalProperties": False,
              "properties": {"instance_id": STRING, "id": STRING, "params": ANY_JSON,
                             "instance_retention": ANY_JSON}}
    created = {"type": "object", "properties": {"id": STRING, "status": STRING, "workflow_id": STRING}}
    conflicts = (400, 404, 409)
    names = {"name": lambda: list(engine().defs)}
    return [
        route(base, guarded(list_workflows), GET=Op(
            "Every workflow with its class, Worker and instance counts", result=OBJECT_LIST, errors=())),
        route(base + "/{name}", guarded(get_workflow), names=names, GET=Op(
            "One workflow with its class, Worker and instance counts", result=OBJECT)),
        route(base + "/{name}/check", guarded(check), names=names, POST=Op(
            "Replay every unfinished instance against the current code without running a step: "
            "ok with the next step, or the divergence naming the step; {limit} pages them "
            "(pass the answer's next as after)",
            body={"type": "object", "properties": {
                "after": {"type": "integer", "minimum": 0, "maximum": _MAX_CURSOR},
                "limit": {"type": "integer", "minimum": 1, "maximum": _MAX_CHECK_PAGE}}},
            result=OBJECT, errors=(400, 404))),
        route(base + "/{name}/instances", guarded(instances), names=names,
              GET=Op("One page of instances, newest first",
                     query={"status": STRING, "id": STRING, "page": {"type": "integer", "minimum": 1},
                            "per_page": {"type": "integer", "minimum": 1}},
                     result=OBJECT_LIST),
              POST=Op("Create an instance {instance_id?, params?}, or several from a list",
                      body={"oneOf": [create, {"type": "array", "items": create}]},
                      status=201, result={"oneOf": [created, {"type": "array", "items": created}]},
                      errors=conflicts)),
        route(base + "/{name}/instances/batch", guarded(batch), names=names, POST=Op(
            "Create several instances: a list (all or none), or {count, params} / {instances} "
            "(each on its own, answering {created, errors})",
            body={"oneOf": [{"type": "array", "items": create}, OBJECT]}, body_required=True, status=201,
            result={"oneOf": [{"type": "array", "items": created}, OBJECT]}, errors=conflicts)),
        route(base + "/{name}/instances/delete", guarded(delete_batch), names=names, POST=Op(
            "Delete up to 100 finished instances and their history (all or none)",
            body={"type": "object", "properties": {"ids": {"type": "array", "items": STRING}}},
            body_required=True, result=OBJECT, errors=conflicts)),
        route(base + "/{name}/instances/{id}", guarded(instance), names=names, GET=Op(
            "One instance with its steps, output and error; `latest` is the newest", result=OBJECT),
              DELETE=Op("Delete a finished instance and its history", result={"type": "null"},
                        errors=conflicts)),
        route(base + "/{name}/instances/{id}/status", guarded(change_status), names=names, **{method: Op(
            "Pause, resume, terminate or restart an instance",
            body={"type": "object", "required": ["status"],
                  "properties": {"status": {"enum": ["pause", "resume", "terminate", "restart"]},
                                 "from_step": STRING}},
            body_required=True, result=OBJECT, errors=conflicts) for method in ("PATCH", "PUT")}),
        route(base + "/{name}/instances/{id}/subscribe", guarded(subscribe), names=names, GET=Op(
            "The instance's events as Server-Sent Events: the retained ones after `cursor` (or the "
            "Last-Event-ID header), then live ones until it completes, errors or is terminated",
            query={"cursor": {"type": "integer", "minimum": 0}, "filter": STRING},
            result=OBJECT, errors=(400, 404))),
        route(base + "/{name}/instances/{id}/events/{type}", guarded(send_event), names=names, POST=Op(
            "Send an event to a waiting instance; the JSON body is the payload",
            body=ANY_JSON, result={"type": "null"}, errors=conflicts)),
    ]


def _create(engine: Engine, name: str, bodies: list[Any]) -> list[dict[str, Any]]:
    items = []
    for body in bodies:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(400, 10001, "each instance must be a JSON object {instance_id?, params?}")
        unknown = set(body) - {"instance_id", "id", "params", "instance_retention"}
        if unknown:
            raise ApiError(400, 10001, f"unknown field(s) {sorted(unknown)}; use instance_id and params")
        items.append((_instance_id(body),
                      codec.encode(body.get("params"), what="the instance params")))
    created = engine.create_batch(name, items, trigger="api")
    return [{"id": c["id"], "status": c["status"], "workflow_id": name} for c in created]


#: the last thing an event stream sends when ``edgelet dev`` stops (an SSE comment: clients
#: that do not know it ignore it; ``edgelet workflows instances tail`` says why it ends)
STOPPING_COMMENT = b": edgelet dev is stopping; reconnect with Last-Event-ID to resume\n\n"


async def _until_stopping(stream: AsyncIterator[Any], stopping: asyncio.Event | None) -> AsyncIterator[Any]:
    """``stream``'s items, then None once ``stopping`` is set (if it is before the stream
    ends). Why: a subscription to a waiting instance may last days; it must not hold
    ``edgelet dev``'s Ctrl-C until uvicorn gives up and cancels it with a traceback."""
    if stopping is None:
        async for item in stream:
            yield item
        return
    stop = asyncio.ensure_future(stopping.wait())
    it = stream.__aiter__()
    try:
        while True:
            nxt = asyncio.ensure_future(it.__anext__())
            await asyncio.wait((nxt, stop), return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                nxt.cancel()
                yield None
                return
            try:
                item = nxt.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stop.cancel()


def _instance_id(body: dict[str, Any]) -> Any:
    """``instance_id`` (Cloudflare's REST name) or ``id`` (the binding's): one of them; two
    that differ are refused rather than one silently chosen."""
    if "instance_id" in body and "id" in body and body["instance_id"] != body["id"]:
        raise ApiError(400, 10001, f"the instance id is given twice, as instance_id {body['instance_id']!r} "
                                   f"and id {body['id']!r}; send one of them")
    return body.get("instance_id", body.get("id"))


async def _json(request: Request) -> Any:
    return await read_json(request, empty={})


def _int(query: Any, key: str, default: int) -> int:
    value = query.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, 10001, f"{key} must be a whole number, got {value!r}") from None
