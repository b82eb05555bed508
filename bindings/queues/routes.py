"""Control-API routes for queues (mounted under ``/cdn-cgi/edgelet/api/``).

``GET /queues``, ``GET /queues/{queue}``, ``POST /queues/{queue}/messages``
``{body, content_type?: json|text, delay_seconds?}`` and ``POST /queues/{queue}/messages/batch``
``{messages: [...], delay_seconds?}``, shaped after Cloudflare's REST API.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgelet.api import ApiError, api_route, json_body, ok
from edgelet.bindings.queues import codec
from edgelet.openapi import ANY_JSON, OBJECT, OBJECT_LIST, STRING, Op, route

_API_TYPES = ("json", "text")


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
        route("/queues/{queue}/messages", api_route(send_one), names=names, POST=Op(
            "Send one message", body=message, body_required=True,
            result={"type": "object", "properties": {"queue": STRING, "id": STRING}})),
        route("/queues/{queue}/messages/batch", api_route(send_batch), names=names, POST=Op(
            "Send several messages at once (all or none)",
            body={"type": "object", "required": ["messages"],
                  "properties": {"messages": {"type": "array", "items": message},
                                 "delay_seconds": {"type": "integer", "minimum": 0}}},
            body_required=True,
            result={"type": "object", "properties": {"queue": STRING,
                                                     "ids": {"type": "array", "items": STRING}}})),
    ]
