"""Service bindings end to end: one Worker calls another through ``env.<binding>``, by
fetch and by RPC, on the default export or a named entrypoint, each Worker in its own
isolate process."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_app

from edgelet.config import ConfigError
from edgelet.testing import Platform

CONFIG = """
    [[workers]]
    name = "front"
    main = "front.py"
    services = [
      { binding = "BACK", service = "back" },
      { binding = "ADMIN", service = "back", entrypoint = "Admin" },
    ]

    [[workers]]
    name = "back"
    main = "back.py"
"""

FRONT = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("localhost", 1)[1]
            if path == "/via-fetch":
                resp = await self.env.BACK.fetch("http://back/echo?x=1", method="POST", body="ping",
                                                 headers={"x-from": "front"})
                return Response(f"{resp.status} {await resp.text()}")
            if path == "/via-rpc":
                total = await self.env.BACK.add(2, b=40)
                return Response(f"sum={total}")
            if path == "/admin-fetch":
                return Response(await (await self.env.ADMIN.fetch("http://back/")).text())
            if path == "/admin-rpc":
                return Response(await self.env.ADMIN.whoami())
            if path == "/rpc-props":
                got = [await self.env.BACK.version, await self.env.BACK.region,
                       await self.env.BACK.slow_prop, await self.env.ADMIN.level]
                try:
                    await self.env.BACK.add
                except TypeError as exc:
                    got.append(str(exc))
                try:
                    await self.env.BACK.nothing
                except AttributeError as exc:
                    got.append(str(exc))
                return Response(repr(got))
            if path == "/rpc-error":
                try:
                    await self.env.BACK.explode("bad input")
                except ValueError as exc:
                    return Response(f"caught ValueError: {exc}")
            return Response("?", status=404)
"""

BACK = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        version = "2.1"

        @property
        def region(self):
            return {"name": "local", "env": sorted(k for k in ("A", "B"))}

        @property
        async def slow_prop(self):
            return 7

        async def fetch(self, request):
            body = await request.text()
            return Response(f"{request.method} {request.url} {request.headers.get('x-from')} {body}",
                            status=201)

        async def add(self, a, b=0):
            return a + b

        async def explode(self, why):
            raise ValueError(why)

    class Admin(WorkerEntrypoint):
        level = 3

        async def fetch(self, request):
            return Response("admin fetch")

        async def whoami(self):
            return "admin entrypoint"
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_app(tmp_path, {"wrangler_like.toml": CONFIG, "front.py": FRONT, "back.py": BACK})


async def test_fetch_and_rpc_reach_the_other_worker(app: Path) -> None:
    async with Platform(app / "wrangler_like.toml") as p:
        resp = await p.fetch("/via-fetch", worker="front")
        assert await resp.text() == "201 POST http://back/echo?x=1 front ping"
        assert await (await p.fetch("/via-rpc", worker="front")).text() == "sum=42"
        # each Worker has its own isolate process
        assert p.host.isolates["front"].pid != p.host.isolates["back"].pid


async def test_a_named_entrypoint_serves_fetch_and_rpc(app: Path) -> None:
    async with Platform(app / "wrangler_like.toml") as p:
        assert await (await p.fetch("/admin-fetch", worker="front")).text() == "admin fetch"
        assert await (await p.fetch("/admin-rpc", worker="front")).text() == "admin entrypoint"


async def test_rpc_reads_properties_and_class_attributes(app: Path) -> None:
    """``await env.SVC.version`` reads a class attribute or property of the target entrypoint,
    as Cloudflare's RPC does; it used to fail with "has no method". Awaiting a method without
    calling it, or a name the entrypoint lacks, is an error that says which."""
    async with Platform(app / "wrangler_like.toml") as p:
        got = await (await p.fetch("/rpc-props", worker="front")).text()
    assert got.startswith("['2.1', {'name': 'local', 'env': ['A', 'B']}, 7, 3, "), got
    assert "'add' is a method; call it" in got and "has no property or method 'nothing'" in got, got


async def test_an_error_raised_by_the_callee_reaches_the_caller_as_its_type(app: Path) -> None:
    async with Platform(app / "wrangler_like.toml") as p:
        resp = await p.fetch("/rpc-error", worker="front")
        assert await resp.text() == "caught ValueError: bad input"


async def test_an_unknown_entrypoint_is_named_in_the_error(app: Path) -> None:
    config = (app / "wrangler_like.toml").read_text().replace('entrypoint = "Admin"', 'entrypoint = "Nope"')
    (app / "wrangler_like.toml").write_text(config)
    with pytest.raises(ConfigError) as info:
        async with Platform(app / "wrangler_like.toml"):
            pass
    message = str(info.value)
    assert "Nope" in message and "entrypoint" in message and "back.py" in message
