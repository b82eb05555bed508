"""The explorer's pages, mounted at ``/cdn-cgi/explorer`` and ``/cdn-cgi/local/explorer``
(the path Cloudflare's Local Explorer answers), plus its own static script and style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
#: where the explorer answers; the second is the path of Cloudflare's Local Explorer
MOUNTS = ("/cdn-cgi/explorer", "/cdn-cgi/local/explorer")

#: section id -> (nav label, template)
SECTIONS: dict[str, tuple[str, str]] = {
    "workers": ("Workers", "workers.html"),
    "kv": ("KV", "kv.html"),
    "d1": ("D1", "d1.html"),
    "r2": ("R2", "r2.html"),
    "durable-objects": ("Durable Objects", "durable_objects.html"),
    "queues": ("Queues", "queues.html"),
    "workflows": ("Workflows", "workflows.html"),
}

templates = Jinja2Templates(directory=str(HERE / "templates"))


def explorer_routes(api_prefix: str) -> list[BaseRoute]:
    """The explorer under each of :data:`MOUNTS`; ``api_prefix`` is where the control API is."""

    def render(request: Request, section: str, template: str, status: int = 200, **extra: Any) -> Response:
        base = request.scope.get("root_path", "") or ""
        # the mount's own path (starlette puts the mount prefix into root_path)
        return templates.TemplateResponse(request, template, {
            "api": api_prefix, "base": base, "section": section, "sections": SECTIONS, **extra},
            status_code=status, headers={"cache-control": "no-store"})

    async def index(request: Request) -> Response:
        return render(request, "workers", "workers.html")

    async def section(request: Request) -> Response:
        name = request.path_params["section"]
        if name not in SECTIONS:
            return render(request, "missing", "missing.html", 404, what=f"section “{name}”")
        return render(request, name, SECTIONS[name][1])

    async def instance(request: Request) -> Response:
        return render(request, "workflows", "instance.html", workflow=request.path_params["name"],
                      instance=request.path_params["id"])

    async def no_slash(request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", status_code=308)

    inner: list[BaseRoute] = [
        Route("/", index),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/workflows/{name}/{id}", instance),
        Route("/{section}", section),
    ]
    out: list[BaseRoute] = []
    for mount in MOUNTS:
        out += [Route(mount, no_slash), Mount(mount, routes=inner)]
    return out
