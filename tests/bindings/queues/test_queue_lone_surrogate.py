"""A queue message whose text holds a lone surrogate (a str from a bad decode) has no UTF-8
form. It failed with a bare "'utf-8' codec can't encode character" (the Worker's text body,
the control API's) or, for a JSON body, told the user to convert their dict into a dict;
now it is a ValueError naming the binding or queue and what to do, and nothing is queued."""

from __future__ import annotations

from typing import Any

import pytest

APP = {
    "wrangler_like.toml": """
name = "qs"
main = "w.py"
queues.producers = [{ binding = "Q", queue = "jobs" }]
""",
    "w.py": '''
from workers import Response, WorkerEntrypoint

CALLS = {
    "text": lambda q: q.send("a\\ud800", contentType="text"),
    "json": lambda q: q.send({"name": "\\udfff"}),
    "batch": lambda q: q.sendBatch([{"body": "ok"}, {"body": ["\\ud800"]}]),
}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            return Response(repr(await CALLS[request.url.rsplit("/", 1)[1]](self.env.Q)))
        except Exception as exc:
            return Response(f"{type(exc).__name__}: {exc}")
''',
}


@pytest.fixture(scope="module")
def s(shared_dev: Any) -> Any:
    return shared_dev(APP)


def backlog(s: Any) -> int:
    return s.api("GET", "/queues/jobs")["result"]["backlog"]


@pytest.mark.parametrize("call,words", [
    ("text", "ValueError: queue binding Q (jobs).send(): the text body is not valid Unicode"),
    ("json", "ValueError: queue binding Q (jobs).send(): a str in the body is not valid Unicode"),
    ("batch", "ValueError: queue binding Q (jobs).sendBatch() message 1: a str in the body is not "
              "valid Unicode"),
])
def test_a_worker_gets_a_value_error_naming_the_binding(s: Any, call: str, words: str) -> None:
    text = s.get(f"/{call}").text
    assert text.startswith(words), text
    assert "contentType='pickle' or as bytes" in text
    assert backlog(s) == 0


@pytest.mark.parametrize("body", [
    {"body": "a\ud800", "content_type": "text"},
    {"body": {"k": "\ud800"}},
])
def test_the_control_api_answers_400_naming_the_queue(s: Any, body: dict[str, Any]) -> None:
    import json
    r = s.post("/cdn-cgi/edgelet/api/queues/jobs/messages",
               content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400
    message = r.json()["errors"][0]["message"]
    assert message.startswith("queue jobs") and "is not valid Unicode (it holds a lone surrogate" in message
    assert backlog(s) == 0
