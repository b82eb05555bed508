"""The floor for the hello-world rows: the same answer as ``hello.py`` (``Hello World!``,
``text/plain;charset=UTF-8``) from a raw ASGI app on bare uvicorn, nothing in between.
``python -m bench --only hello`` prints edgelet beside it (issue 20: ≥ 0.75×)."""

HEADERS = [(b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", b"12")]


async def app(scope, receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello World!"})
