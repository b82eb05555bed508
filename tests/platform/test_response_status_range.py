"""``Response(body, status=999)``: on Cloudflare the Python SDK builds a JavaScript Response,
whose constructor throws ``RangeError: Responses may only be constructed with status codes in
the range 200 to 599, inclusive.``; a Python Worker catches it as ``pyodide.ffi.JsException``
(``name`` "RangeError"), and ``except ValueError`` does not catch it. edgelet raised a
ValueError, so a Worker's handler that worked here failed once deployed."""

from __future__ import annotations

from typing import Any

APP = {
    "wrangler_like.toml": """
        name = "app"
        main = "app.py"
    """,
    "app.py": """
        from pyodide.ffi import JsException
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                status = int(request.url.rsplit("/", 1)[1])
                try:
                    Response("x", status=status)
                except ValueError as exc:
                    return Response.json({"caught": "ValueError", "text": str(exc)})
                except JsException as exc:
                    return Response.json({"caught": "JsException", "name": exc.name,
                                          "message": exc.message, "text": str(exc)})
                return Response.json({"caught": None})
    """,
}

WORKERD = "Responses may only be constructed with status codes in the range 200 to 599, inclusive."


def test_a_status_out_of_range_raises_the_range_error_workers_catch(shared_dev: Any) -> None:
    s = shared_dev(APP)
    for status in (999, 199, 600, 0):
        answer = s.get(f"/{status}").json()
        assert answer["caught"] == "JsException", answer
        assert answer["name"] == "RangeError", answer
        assert answer["message"].startswith(WORKERD), answer
        assert answer["text"].startswith("RangeError: " + WORKERD), answer
        assert f"Response status {status}" in answer["text"], answer
    assert s.get("/200").json() == {"caught": None}
    assert s.get("/599").json() == {"caught": None}
