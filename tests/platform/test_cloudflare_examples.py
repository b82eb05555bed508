"""What Cloudflare's own tests assert of its python-workers-examples 03 (FastAPI), 12 (image
generation), 17 (a Worker loaded at run time) and 18 (Django), checked against our own apps
written in the same style (tests/fixtures/apps; no third-party source is copied): each test
makes the same requests and the same assertions as Cloudflare's test for that example."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parent.parent / "fixtures" / "apps"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def serve(dev: Any, tmp_path: Path, app: str) -> Any:
    folder = tmp_path / app
    shutil.copytree(APPS / app, folder)
    return dev(None, "--in-memory", cwd=folder)


def test_03_fastapi_with_jinja(dev: Any, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    s = serve(dev, tmp_path, "fastapi-jinja")
    r = s.get("/")
    assert r.status_code == 200
    assert r.text == ('{"message":"This is an example of FastAPI with Jinja2 - go to /hi/<name> '
                      'to see a template rendered"}')
    assert r.headers["content-type"] == "application/json"
    r = s.get("/hi/Dominik")
    assert r.status_code == 200
    assert r.text == '{"message":"Hello, Dominik!"}'
    assert r.headers["content-type"] == "application/json"
    r = s.get("/env")
    assert r.text == '{"message":"Here is an example of getting an environment variable: My env var"}'
    assert r.headers["content-type"] == "application/json"


def test_12_image_gen_routes_are_cacheable_pngs(dev: Any, tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    s = serve(dev, tmp_path, "image-gen")
    for path in ["/gradient", "/badge", "/placeholder", "/chart"]:
        r = s.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "public, max-age=3600"
        assert r.content.startswith(PNG_MAGIC), f"{path} is not a PNG"
    index = s.get("/")
    assert index.headers["content-type"] == "text/html"
    assert "gradient" in index.text
    # the query shapes the picture: a bigger placeholder is a bigger PNG with those dimensions
    big = s.get("/placeholder?w=640&h=480").content
    assert int.from_bytes(big[16:20], "big") == 640 and int.from_bytes(big[20:24], "big") == 480


def test_17_runs_a_worker_loaded_at_runtime(dev: Any, tmp_path: Path) -> None:
    s = serve(dev, tmp_path, "loader-hello")
    assert s.get("/").text == "Hello from a dynamically-loaded Python Worker!"
    assert s.get("/again").text == "Hello from a dynamically-loaded Python Worker!"  # cached by id


def test_18_django(dev: Any, tmp_path: Path) -> None:
    pytest.importorskip("django")
    s = serve(dev, tmp_path, "django-hello")
    r = s.get("/")
    assert r.status_code == 200
    assert r.text == '{"message": "Hello from Django on Cloudflare Workers!"}'
    assert r.headers["content-type"] == "application/json"
