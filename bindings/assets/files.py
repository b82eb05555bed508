"""Resolving a URL path to a file inside the assets folder, never outside it."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgelet.bindings.assets.config import Assets

_EXTRA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
                ".json": "application/json", ".svg": "image/svg+xml", ".webp": "image/webp",
                ".woff2": "font/woff2", ".ico": "image/vnd.microsoft.icon",
                ".md": "text/markdown", ".txt": "text/plain"}


def content_type(path: Path) -> str:
    kind = _EXTRA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"
    if kind.startswith("text/") or kind == "application/json":
        kind += "; charset=utf-8"
    return kind


def inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def resolve(assets: Assets, url: str) -> tuple[Path | None, str | None]:
    """(file to serve, redirect location) for a request URL; (None, None) if not found.

    ``..`` segments, encoded or not, and symlinks that lead out of the folder never match.
    """
    root = assets.directory.resolve()
    raw_path = unquote(urlsplit(url).path or "/")
    if "\x00" in raw_path:
        return None, None
    parts = [p for p in raw_path.split("/") if p not in ("", ".")]
    if any(p == ".." or "\\" in p for p in parts):
        return None, None
    target = root.joinpath(*parts)
    if not inside(root, target):
        return None, None
    html = assets.html_handling != "none"
    if target.is_file():
        if html and target.name == "index.html" and assets.html_handling != "none":
            folder = "/" + "/".join(parts[:-1])
            return None, folder if folder.endswith("/") else folder + "/"
        return target, None
    if html:
        if target.is_dir() and (target / "index.html").is_file():
            if not raw_path.endswith("/") and assets.html_handling != "drop-trailing-slash":
                return None, raw_path + "/"
            return target / "index.html", None
        with_html = target.with_name(target.name + ".html") if parts else None
        if with_html is not None and with_html.is_file() and inside(root, with_html):
            return with_html, None
    return None, None


def not_found_file(assets: Assets) -> tuple[Path | None, int]:
    root = assets.directory
    if assets.not_found_handling == "single-page-application" and (root / "index.html").is_file():
        return root / "index.html", 200
    if assets.not_found_handling == "404-page":
        for folder in (root,):
            page = folder / "404.html"
            if page.is_file():
                return page, 404
    return None, 404
