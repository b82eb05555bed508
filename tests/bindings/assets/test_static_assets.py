"""Static assets as a browser sees them: content types, the 404 page, ``run_worker_first``
and ``env.ASSETS.fetch`` from the Worker, through the platform's real router."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_app

from edgelet.testing import Platform

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("localhost", 1)[1]
            if path.startswith("/api/"):
                return Response("from the worker " + path)
            if path == "/proxied":
                resp = await self.env.ASSETS.fetch("http://assets.local/data.json")
                return Response(f"{resp.status} {resp.headers.get('content-type')} {await resp.text()}")
            if path == "/proxied-missing":
                resp = await self.env.ASSETS.fetch("http://assets.local/missing.css")
                return Response(f"{resp.status} {await resp.text()}")
            return Response("worker fallback " + path, status=418)
"""

FILES = {
    "w.py": WORKER,
    "public/index.html": "<h1>home</h1>",
    "public/style.css": "body { color: red }",
    "public/app.js": "console.log(1)",
    "public/data.json": '{"ok": true}',
    "public/about.html": "<p>about</p>",
    "public/404.html": "<p>custom not found</p>",
}


def config(**assets: str | bool) -> str:
    table = ", ".join(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in assets.items())
    return f"""
        name = "site"
        main = "w.py"
        assets = {{ directory = "./public", binding = "ASSETS"{", " + table if table else ""} }}
    """


def site(tmp_path: Path, **assets: str | bool) -> Path:
    write_app(tmp_path, {**FILES, "wrangler_like.toml": config(**assets)})
    return tmp_path / "wrangler_like.toml"


@pytest.mark.parametrize("path,content_type", [
    ("/style.css", "text/css; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/data.json", "application/json; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
])
async def test_files_are_served_with_their_content_type(tmp_path: Path, path: str, content_type: str) -> None:
    async with Platform(site(tmp_path)) as p:
        resp = await p.fetch(path)
        assert resp.status == 200
        assert resp.headers.get("content-type") == content_type
        assert resp.headers.get("etag")


async def test_html_handling_redirects_and_drops_the_extension(tmp_path: Path) -> None:
    async with Platform(site(tmp_path)) as p:
        assert await (await p.fetch("/about")).text() == "<p>about</p>"
        resp = await p.fetch("/index.html")
        assert resp.status == 307 and resp.headers.get("location") == "/"


async def test_a_missing_file_falls_through_to_the_worker(tmp_path: Path) -> None:
    async with Platform(site(tmp_path)) as p:
        resp = await p.fetch("/nothing-here")
        assert resp.status == 418 and await resp.text() == "worker fallback /nothing-here"


async def test_the_404_page_answers_a_missing_file(tmp_path: Path) -> None:
    async with Platform(site(tmp_path, not_found_handling="404-page")) as p:
        resp = await p.fetch("/nothing-here")
        assert resp.status == 404 and await resp.text() == "<p>custom not found</p>"
        assert resp.headers.get("content-type") == "text/html; charset=utf-8"


async def test_single_page_application_serves_index_for_unknown_paths(tmp_path: Path) -> None:
    async with Platform(site(tmp_path, not_found_handling="single-page-application")) as p:
        resp = await p.fetch("/some/client/route")
        assert resp.status == 200 and await resp.text() == "<h1>home</h1>"


async def test_run_worker_first_lets_the_worker_answer_before_the_files(tmp_path: Path) -> None:
    async with Platform(site(tmp_path, run_worker_first=True)) as p:
        resp = await p.fetch("/style.css")
        assert resp.status == 418 and await resp.text() == "worker fallback /style.css"
        assert await (await p.fetch("/api/x")).text() == "from the worker /api/x"


async def test_env_assets_fetch_reads_files_from_the_worker(tmp_path: Path) -> None:
    async with Platform(site(tmp_path, run_worker_first=True)) as p:
        assert await (await p.fetch("/proxied")).text() == '200 application/json; charset=utf-8 {"ok": true}'
        assert await (await p.fetch("/proxied-missing")).text() == "404 Not Found"


async def test_paths_outside_the_folder_are_never_served(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    async with Platform(site(tmp_path)) as p:
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
            resp = await p.fetch(path)
            assert "top secret" not in await resp.text(), path
