"""docs/frameworks.md's examples, run as written under a real `edgelet dev`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("flask")
pytest.importorskip("django")

DOC = Path(__file__).resolve().parents[2] / "docs" / "frameworks.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def example(marker: str) -> str:
    """The python block that contains ``marker``."""
    found = [b for b in blocks("python") if marker in b]
    assert len(found) == 1, f"docs/frameworks.md: expected one python example with {marker!r}"
    return found[0]


def start(dev, code: str):
    toml = blocks("toml")[0]
    return dev({"wrangler_like.toml": toml, "worker.py": code})


def test_fastapi_example(dev):
    s = start(dev, example("class Item(BaseModel)"))
    assert s.get("/").json() == {"message": "Hello from FastAPI"}
    assert s.get("/env").json() == {"greeting": "hello"}
    r = s.post("/items/7", json={"name": "pen", "price": 1.5})
    assert r.json() == {"id": 7, "total": 3.0, "worker": "hello"}


def test_flask_example(dev):
    s = start(dev, example("from flask import"))
    assert s.post("/double", json={"x": 4}).json() == {"result": 8, "name": "hello"}


def test_django_example(dev):
    s = start(dev, example("import django"))
    assert s.get("/").text == "Hello from Django, hello"


def test_streaming_example(dev):
    s = start(dev, example("async def ticks"))
    assert s.get("/").text == "tick 0\ntick 1\ntick 2\n"


def test_sdk_names_example(dev):
    s = start(dev, example("form_data()"))
    made = s.get("/")
    assert made.headers["content-type"].startswith("multipart/form-data") and b"hello" in made.content
    up = s.post("/", files={"file": ("a.txt", b"12345", "text/plain")})
    assert up.json() == {"name": "a.txt", "size": 5}


def test_js_example(dev):
    s = start(dev, example("from js import"))
    got = s.get("/some/path").json()
    assert got["sha256"] == hashlib.sha256(b"edgelet").hexdigest()
    assert got["bytes"] == 7 and got["path"] == "/some/path" and len(got["id"]) == 36


def test_fastapi_websocket_example(dev):
    from websockets.sync.client import connect
    s = start(dev, example("@app.websocket"))
    client = example("websockets.sync.client").replace("ws://127.0.0.1:8787", s.url.replace("http", "ws"))
    exec(compile(client, "docs/frameworks.md (websocket client)", "exec"), {})
    with connect(s.url.replace("http", "ws") + "/ws") as ws:
        ws.send("again")
        assert ws.recv(timeout=10) == "echo: again"
