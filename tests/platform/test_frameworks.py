"""FastAPI, Starlette, Flask and Django apps served by a real `edgelet dev` through
``workers.asgi`` / ``workers.wsgi``, and bodies streamed to the client as produced."""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("flask")
pytest.importorskip("django")

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    vars = { GREETING = "hello from env" }
"""

FASTAPI_APP = '''
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse
    from pydantic import BaseModel
    from workers import WorkerEntrypoint
    import asgi

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float
        tags: list[str] = []

    @app.get("/")
    async def root():
        return {"message": "root"}

    @app.get("/env")
    async def read_env(env=asgi.env):
        return {"greeting": env.GREETING}

    @app.get("/scope")
    async def scope_env(req: Request):
        return {"greeting": req.scope["env"].GREETING, "path": req.url.path,
                "query": req.url.query}

    @app.post("/items/{item_id}")
    async def create_item(item_id: int, item: Item):
        return {"id": item_id, "name": item.name, "total": item.price * 2, "tags": item.tags}

    @app.post("/echo-size")
    async def echo_size(req: Request):
        size = 0
        parts = 0
        async for chunk in req.stream():
            size += len(chunk)
            parts += 1 if chunk else 0
        return {"size": size, "parts": parts}

    @app.get("/stream")
    async def stream():
        async def gen():
            for i in range(3):
                yield f"chunk {i}\\n".encode()
                await asyncio.sleep(0.4)
        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/boom")
    async def boom():
        raise ZeroDivisionError("fastapi route exploded")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await asgi.fetch(app, request, self.env)
'''


@pytest.fixture(scope="module")
def fastapi_dev(shared_dev):
    """One `edgelet dev` on FASTAPI_APP for the three tests that only call it."""
    return shared_dev({"wrangler_like.toml": TOML, "worker.py": FASTAPI_APP})


def test_fastapi_routes_env_and_json_body(fastapi_dev):
    s = fastapi_dev
    assert s.get("/").json() == {"message": "root"}
    assert s.get("/env").json() == {"greeting": "hello from env"}
    assert s.get("/scope?a=1").json() == {"greeting": "hello from env", "path": "/scope", "query": "a=1"}
    r = s.post("/items/7", json={"name": "pen", "price": 1.5, "tags": ["x"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 7, "name": "pen", "total": 3.0, "tags": ["x"]}
    bad = s.post("/items/7", json={"name": "pen"})
    assert bad.status_code == 422 and "price" in bad.text
    assert s.get("/nope").status_code == 404
    # a large body reaches the app in several http.request messages
    big = s.post("/echo-size", content=b"x" * 300_000).json()
    assert big["size"] == 300_000 and big["parts"] > 1


def test_fastapi_streaming_response_arrives_as_produced(fastapi_dev):
    s = fastapi_dev
    started = time.monotonic()
    seen: list[tuple[float, bytes]] = []
    with httpx.stream("GET", s.url + "/stream", timeout=30) as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers
        for chunk in r.iter_raw():
            seen.append((time.monotonic() - started, chunk))
    body = b"".join(c for _, c in seen)
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    # each chunk came when it was made (0.4 s apart), not all at the end
    assert len(seen) == 3, seen
    assert seen[-1][0] - seen[0][0] >= 0.6, seen


def test_asgi_app_that_raises_gives_500_with_traceback_in_log(fastapi_dev):
    s = fastapi_dev
    r = s.get("/boom")
    assert r.status_code == 500
    s.wait_for_log("fastapi route exploded", 5)
    logs = s.logs()
    assert "ZeroDivisionError: fastapi route exploded" in logs
    assert "Traceback" in logs
    assert s.get("/").status_code == 200  # the isolate keeps serving


LIFESPAN_APP = '''
    from contextlib import asynccontextmanager
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route
    from workers import WorkerEntrypoint, Response
    from workers import asgi

    EVENTS = []

    @asynccontextmanager
    async def lifespan(app):
        EVENTS.append("startup")
        yield {"db": "connected"}
        EVENTS.append("shutdown")

    async def home(request):
        return JSONResponse({"events": list(EVENTS), "db": request.state.db})

    app = Starlette(routes=[Route("/", home)], lifespan=lifespan)

    async def raw_app(scope, receive, send):
        assert scope["type"] == "http", "raw_app has no lifespan"
        message = await receive()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"x-raw", b"yes"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": b"raw:" + message["body"]})

    async def crashing_app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        raise KeyError("raw app exploded")

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/raw"):
                return await asgi.fetch(raw_app, request, self.env)
            if request.url.endswith("/crash"):
                return await asgi.fetch(crashing_app, request, self.env)
            return await asgi.fetch(app, request, self.env)
'''


def test_lifespan_runs_around_each_request_as_on_cloudflare(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": LIFESPAN_APP})
    first = s.get("/").json()
    assert first == {"events": ["startup"], "db": "connected"}
    second = s.get("/").json()
    assert second["events"] == ["startup", "shutdown", "startup"]
    raw = s.post("/raw", content=b"abc")
    assert raw.status_code == 201 and raw.text == "raw:abc" and raw.headers["x-raw"] == "yes"
    assert raw.headers.get_list("set-cookie") == ["a=1", "b=2"]
    crash = s.get("/crash")
    assert crash.status_code == 500 and "raw app exploded" in crash.text


FLASK_APP = '''
    from flask import Flask, Response as FlaskResponse, jsonify, request, stream_with_context
    from workers import WorkerEntrypoint
    from workers import wsgi

    app = Flask(__name__)

    @app.get("/")
    def index():
        return "flask says hi"

    @app.post("/form")
    def form():
        return jsonify(name=request.form["name"], n=len(request.form))

    @app.post("/json")
    def json_route():
        data = request.get_json()
        return jsonify(doubled=data["x"] * 2, env=request.environ["workers.env"].GREETING)

    @app.get("/gen")
    def gen():
        def chunks():
            for i in range(3):
                yield f"line {i}\\n"
        return FlaskResponse(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/missing")
    def missing():
        return "gone", 410

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await wsgi.fetch(app, request, self.env)
'''


def test_flask_app(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": FLASK_APP})
    r = s.get("/")
    assert r.status_code == 200 and r.text == "flask says hi"
    assert r.headers["content-type"].startswith("text/html")
    assert s.post("/form", data={"name": "ada", "x": "1"}).json() == {"name": "ada", "n": 2}
    assert s.post("/json", json={"x": 21}).json() == {"doubled": 42, "env": "hello from env"}
    assert s.get("/gen").text == "line 0\nline 1\nline 2\n"
    assert s.get("/missing").status_code == 410
    assert s.get("/nothing-here").status_code == 404


DJANGO_APP = '''
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, SECRET_KEY="test-only", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"], INSTALLED_APPS=[],
    )
    django.setup()

    from django.http import HttpResponse, JsonResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from django.core.wsgi import get_wsgi_application
    from workers import WorkerEntrypoint
    from workers import wsgi

    def hello(request):
        return HttpResponse(f"django {request.method} {request.GET.get('q', '')}")

    @csrf_exempt
    def echo(request):
        return JsonResponse({"body": request.body.decode(), "env": request.META["workers.env"].GREETING})

    urlpatterns = [path("", hello), path("echo", echo)]
    application = get_wsgi_application()

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await wsgi.fetch(application, request, self.env)
'''


def test_django_app(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": DJANGO_APP})
    r = s.get("/?q=search")
    assert r.status_code == 200 and r.text == "django GET search"
    assert s.post("/echo", content=b"payload").json() == {"body": "payload", "env": "hello from env"}
    assert s.get("/absent").status_code == 404


STREAM_WORKER = '''
    import asyncio
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/fail"):
                async def bad():
                    yield b"partial "
                    raise RuntimeError("stream broke")
                return Response(bad())
            async def gen():
                for i in range(3):
                    yield f"part {i};"
                    await asyncio.sleep(0.4)
            return Response(gen(), headers={"content-type": "text/plain"})
'''


def test_plain_worker_streams_an_async_generator_body(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": STREAM_WORKER})
    started = time.monotonic()
    times: list[float] = []
    chunks: list[bytes] = []
    with httpx.stream("GET", s.url + "/", timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "text/plain"
        for chunk in r.iter_raw():
            times.append(time.monotonic() - started)
            chunks.append(chunk)
    assert b"".join(chunks) == b"part 0;part 1;part 2;"
    assert len(times) == 3 and times[-1] - times[0] >= 0.6, times
    # a stream that raises ends the body and logs the traceback
    with httpx.stream("GET", s.url + "/fail", timeout=30) as r:
        data = b""
        try:
            for chunk in r.iter_raw():
                data += chunk
        except httpx.HTTPError:
            pass
    assert data.startswith(b"partial")
    s.wait_for_log("stream broke", 5)
    assert "RuntimeError: stream broke" in s.logs()


ENDLESS_WORKER = '''
    import asyncio
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            async def forever():
                try:
                    while True:
                        yield b"tick\\n"
                        await asyncio.sleep(0.05)
                finally:
                    print("endless stream stopped")
            return Response(forever())
'''


def test_client_going_away_stops_the_workers_stream(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": ENDLESS_WORKER})
    with httpx.stream("GET", s.url + "/", timeout=30) as r:
        first = next(r.iter_raw())
        assert first.startswith(b"tick")
    s.wait_for_log("endless stream stopped", 5)
    assert "endless stream stopped" in s.logs()
