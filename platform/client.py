"""A small client for the control API, used by every CLI command that talks to ``dev``."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import click
import httpx


class ApiClient:
    """Calls ``/cdn-cgi/edgelet/api/...`` and unwraps Cloudflare's envelope."""

    def __init__(self, port: int = 8787, ip: str = "127.0.0.1", token: str | None = None) -> None:
        self.base = f"http://{ip}:{port}/cdn-cgi/edgelet/api"
        token = token or os.environ.get("EDGELET_API_TOKEN")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = httpx.request(method, self.base + path, headers=self.headers, timeout=60, **kwargs)
        except httpx.ConnectError:
            raise click.ClickException(
                f"no `edgelet dev` answers at {self.base}; start one or pass --port") from None
        try:
            data = resp.json()
        except ValueError:
            raise click.ClickException(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:200]}") from None
        if not data.get("success", False):
            errors = "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in data.get("errors", []))
            raise click.ClickException(errors or f"HTTP {resp.status_code}")
        return data.get("result")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, content: bytes, params: dict[str, Any] | None = None) -> Any:
        return self.request("PUT", path, content=content, params=params or {})

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        try:
            with httpx.stream("GET", self.base + path, headers=self.headers, timeout=None) as resp:
                for line in resp.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError:
            raise click.ClickException(
                f"no `edgelet dev` answers at {self.base}; start one or pass --port") from None


def port_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --port/--ip and hand the command an ``ApiClient`` as ``client``."""

    @click.option("--port", default=8787, show_default=True, type=int, help="Port of `edgelet dev`.")
    @click.option("--ip", default="127.0.0.1", show_default=True)
    @functools.wraps(fn)
    def wrapper(*args: Any, port: int, ip: str, **kwargs: Any) -> Any:
        return fn(*args, client=ApiClient(port, ip), **kwargs)

    return wrapper


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table; ``--json`` output is for scripts."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(r.get(c, "")) if r.get(c) is not None else "" for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=False)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)))
