"""Unmodified third-party Python Worker examples (tests/fixtures/third_party, see each
SOURCE.md), served by `edgelet dev` with their own wrangler config files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "third_party"


def serve(dev, tmp_path: Path, example: str):
    folder = tmp_path / example
    shutil.copytree(FIXTURES / example, folder)
    return dev(None, "--in-memory", cwd=folder)


@pytest.mark.parametrize("example", ["hello", "01-hello"])
def test_hello_world_examples(dev, tmp_path, example):
    s = serve(dev, tmp_path, example)
    r = s.get("/")
    assert r.status_code == 200
    assert r.text == "Hello world!"
    assert r.headers["content-type"] == "text/plain;charset=UTF-8"


@pytest.mark.parametrize("example", ["cron", "08-cron"])
def test_cron_examples(dev, tmp_path, example):
    s = serve(dev, tmp_path, example)
    assert s.get("/").text.startswith("Hello from Cron Worker")
    assert s.get("/cdn-cgi/handler/scheduled?cron=*/1+*+*+*+*").status_code == 200
    deadline = time.monotonic() + 5
    while "Scheduled task has been executed." not in s.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Scheduled task has been executed." in s.logs()


@pytest.mark.parametrize("example", ["assets", "06-assets"])
def test_static_assets_examples(dev, tmp_path, example):
    s = serve(dev, tmp_path, example)
    home = s.get("/")
    assert home.status_code == 200 and "<html" in home.text.lower()
    assert home.headers["content-type"].startswith("text/html")
    folder = FIXTURES / example / "assets"
    expected = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
    for path in folder.iterdir():
        if path.suffix in expected:
            r = s.get("/" + path.name)
            assert r.status_code == 200, path.name
            assert r.headers["content-type"] == expected[path.suffix]
            assert r.content == path.read_bytes()


@pytest.mark.parametrize("example", ["durable-objects", "07-durable-objects"])
def test_durable_object_examples(dev, tmp_path, example):
    s = serve(dev, tmp_path, example)
    assert s.get("/groceries/show").text == "No messages"
    assert s.get("/groceries/add/milk").text == "Message sent"
    assert s.get("/groceries/add/eggs").text == "Message sent"
    assert s.get("/groceries/show").text == "milk\neggs"
    assert s.get("/other/show").text == "No messages"


def test_workflows_dag_example(dev, tmp_path):
    """Cloudflare's own DAG example (steps that sleep 1-15 s, legacy depends=, concurrent)."""
    s = serve(dev, tmp_path, "10-workflows")
    started = s.get("/start").text
    assert "workflow with ID:" in started
    instance_id = started.split("ID:")[-1].strip()
    deadline = time.monotonic() + 60
    status = {}
    while time.monotonic() < deadline:
        status = s.get(f"/status/{instance_id}").json()
        if status["status"] in ("complete", "errored"):
            break
        time.sleep(0.5)
    assert status["status"] == "complete", status
    logs = s.logs()
    assert logs.index("executing dep1") < logs.index("I awaited the first two steps")
    assert logs.index("executing dep2") < logs.index("I awaited the first two steps")
