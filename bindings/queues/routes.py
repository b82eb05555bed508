"""Control-API routes for queues (mounted under ``/cdn-cgi/edgelet/api/``).

``GET /queues``, ``GET /queues/{queue}``, ``POST /queues/{queue}/messages``
``{body, content_type?: json|text, delay_seconds?}`` and ``POST /queues/{queue}/messages/batch``
``{messages: [...], delay_seconds?}``, shaped after Cloudflare's REST API.
``GET /queues/{queue}/messages?state=&cursor=&limit=`` pages the stored messages (the
explorer's view), ``POST /queues/{queue}/messages/{id}/move`` ``{to?}`` moves a dead letter
back and ``POST /queues/{queue}/purge`` empties a queue.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgelet.api import ApiError, api_route, json_body, ok
from edgelet.bindings.queues import codec
from edgelet.bindings.queues.storage import DEAD, INFLIGHT, PENDING
from edgelet.openapi import ANY_JSON, OBJECT, OBJECT_LIST, STRING, Op, route

_API_TYPES = ("json", "text")
#: ``state=`` of the message listing: (stored state, only retried / only untried / either)
_STATES: dict[str, tuple[int, bool | None]] = {
    "waiting": (PENDING, False), "retrying": (PENDING, True), "pending": (PENDING, None),
    "inflight": (INFLIGHT, None), "dead": (DEAD, None)}
MAX_PAGE = 1000


def _message_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored message for people: the body as JSON/text where it is one, else base64."""
    _seq, message_id, timestamp_ms, content_type, body, attempts, visible_at = row
    out: dict[str, Any] = {"id": message_id, "timestamp_ms": timestamp_ms, "content_type": content_type,
                           "attempts": attempts, "visible_at_ms": int(visible_at * 1000), "size": len(body)}
    try:
        out["body"] = codec.decode_body(content_type, body)
        if isinstance(out["body"], bytes):
            raise ValueError("bytes")
    except (ValueError, UnicodeDecodeError):
        out["body"] = base64.b64encode(body).decode("ascii")
        out["encoding"] = "base64"
    return out


def _cursor(raw: str | None) -> tuple[float, int, int] | None:
    """``visible_at:seq:origin`` of the last message of the previous page."""
    if not raw:
        return None
    try:
        when, seq, origin = raw.split(":")
        return float(when), int(seq), int(origin)
    except ValueError:
        raise ApiError(400, 10001, f"cursor {raw!r} is not one this API gave out; pass "
                                   f"result_info.cursor of the previous page, or none") from None


def routes(plugin: Any) -> list[Route]:
    def broker() -> Any:
        if plugin.broker is None:
            raise ApiError(503, 10503, "the queues binding is not started")
        return plugin.broker

    def known_queue(name: str) -> str:
        names = broker().names()
        if name not in names:
            raise LookupError(f"no queue named {name!r}; queues: {', '.join(names) or 'none'} "
                              f"(queues come from queues.producers / queues.consumers in the config)")
        return name

    async def list_queues(request: Request) -> Response:
        b = broker()
        return ok([b.summary(name) for name in b.names()])

    async def get_queue(request: Request) -> Response:
        return ok(broker().summary(known_queue(request.path_params["queue"])))

    def wire_message(item: Any, where: str) -> list[Any]:
        if not isinstance(item, dict) or "body" not in item:
            raise ApiError(400, 10001, f"{where}: send a JSON object with a 'body' key, e.g. "
                                       f'{{"body": {{"hello": "world"}}, "content_type": "json"}}')
        content_type = item.get("content_type", item.get("contentType")) or "json"
        if content_type not in _API_TYPES:
            raise ApiError(400, 10001, f"{where}: content_type {content_type!r} is not accepted "
                                       f"over the API; use 'json' or 'text'")
        delay = codec.check_delay(item.get("delay_seconds", item.get("delaySeconds")), where,
                                  "delay_seconds")
        return [content_type, codec.encode_body(item["body"], content_type, where), delay]

    async def list_messages(request: Request) -> Response:
        queue = known_queue(request.path_params["queue"])
        q = request.query_params
        state_name = q.get("state") or "pending"
        if state_name not in _STATES:
            raise ApiError(400, 10001, f"state {state_name!r} is not one of {', '.join(_STATES)}")
        raw_limit = q.get("limit") or "50"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise ApiError(400, 10001, f"limit must be a whole number from 1 to {MAX_PAGE}, got {raw_limit!r}")
        limit = int(raw_limit)
        state, retrying = _STATES[state_name]
        b = broker()
        rows = b.store.page(queue, state, b.host.clock.now(), retrying=retrying,
                            after=_cursor(q.get("cursor")), limit=limit)
        cursor = f"{rows[-1][6]!r}:{rows[-1][0]}" if len(rows) == limit else ""
        return ok([_message_json(r) for r in rows],
                  result_info={"count": len(rows), "cursor": cursor, "state": state_name,
                               "total_count": b.store.count(queue, state, retrying=retrying)})

    async def messages(request: Request) -> Response:
        if request.method == "GET":
            return await list_messages(request)
        return await send_one(request)

    async def move(request: Request) -> Response:
        queue = known_queue(request.path_params["queue"])
        data = await json_body(request)
        to = data.get("to")
        if to is not None and not isinstance(to, str):
            raise ApiError(400, 10001, "to must be the name of a queue")
        moved_to = broker().move_back(queue, request.path_params["id"], to)
        return ok({"queue": moved_to, "id": request.path_params["id"]})

    async def purge(request: Request) -> Response:
        queue = known_queue(request.path_params["queue"])
        return ok({"queue": queue, "purged": broker().purge(queue)})

    async def send_one(request: Request) -> Response:
        queue = known_queue(request.path_params["queue"])
        data = await json_body(request, required=True)
        where = f"queue {queue}"
        ids = broker().send(queue, [wire_message(data, where)], None, 0.0, where)
        return ok({"queue": queue, "id": ids[0]})

    async def send_batch(request: Request) -> Response:
        queue = known_queue(request.path_params["queue"])
        data = await json_body(request, required=True)
        where = f"queue {queue}"
        items = data.get("messages")
        if not isinstance(items, list):
            raise ApiError(400, 10001, f"{where}: send {{\"messages\": [{{\"body\": ...}}, ...]}}")
        wire = [wire_message(m, f"{where} message {i}") for i, m in enumerate(items)]
        delay = codec.check_delay(data.get("delay_seconds"), where, "delay_seconds")
        ids = broker().send(queue, wire, delay, 0.0, where)
        return ok({"queue": queue, "ids": ids})

    names = {"queue": lambda: broker().names()}
    message = {"type": "object", "required": ["body"],
               "properties": {"body": ANY_JSON, "content_type": {"enum": list(_API_TYPES)},
                              "delay_seconds": {"type": "integer", "minimum": 0}}}
    return [
        route("/queues", api_route(list_queues), GET=Op(
            "Every queue with its producers, consumer and backlog", result=OBJECT_LIST, errors=())),
        route("/queues/{queue}", api_route(get_queue), names=names, GET=Op(
            "One queue with its producers, consumer and backlog", result=OBJECT)),
        route("/queues/{queue}/messages", api_route(messages), names=names,
              GET=Op("One page of stored messages in the order they fall due; follow result_info.cursor",
                     query={"state": {"enum": list(_STATES)}, "cursor": STRING,
                            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                     result=OBJECT_LIST),
              POST=Op("Send one message", body=message, body_required=True,
                      result={"type": "object", "properties": {"queue": STRING, "id": STRING}})),
        route("/queues/{queue}/messages/{id}/move", api_route(move), names=names, POST=Op(
            "Move a dead letter back: from a dead-letter queue to the queue it serves (or `to`), "
            "or a dead message back into its queue, due now with attempts from zero",
            body={"type": "object", "properties": {"to": STRING}}, result=OBJECT)),
        route("/queues/{queue}/purge", api_route(purge), names=names, POST=Op(
            "Delete every message of the queue except those being delivered right now",
            result={"type": "object", "properties": {"queue": STRING, "purged": {"type": "integer"}}})),
        route("/queues/{queue}/messages/batch", api_route(send_batch), names=names, POST=Op(
            "Send several messages at once (all or none)",
            body={"type": "object", "required": ["messages"],
                  "properties": {"messages": {"type": "array", "items": message},
                                 "delay_seconds": {"type": "integer", "minimum": 0}}},
            body_required=True,
            result={"type": "object", "properties": {"queue": STRING,
                                                     "ids": {"type": "array", "items": STRING}}})),
    ]
