"""An MCP server written with FastMCP (the ``mcp`` package, as Cloudflare's Python MCP
example uses it) served through ``workers.asgi`` under a real `edgelet dev`, answering the
MCP client of the same package over the streamable HTTP transport."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("mcp.server.fastmcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

TOML = """
    [[workers]]
    name = "mcp"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    vars = { UNIT = "cm" }
"""

WORKER = '''
    from mcp.server.fastmcp import FastMCP
    from workers import WorkerEntrypoint
    import asgi


    def build(env):
        # built per request, as Cloudflare's example does: the adapter runs the app's
        # lifespan (which starts the session manager, once per instance) around each request
        mcp = FastMCP("Demo", stateless_http=True)

        @mcp.tool()
        def add(a: int, b: int) -> int:
            """Add two numbers"""
            return a + b

        @mcp.tool()
        def measure(length: float) -> str:
            """Format a length in the Worker's unit"""
            return f"{length:g} {env.UNIT}"

        @mcp.resource("greeting://{name}")
        def greeting(name: str) -> str:
            """Greet someone"""
            return f"Hello, {name}!"

        return mcp.streamable_http_app()


    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await asgi.fetch(build(self.env), request, self.env)
'''


async def test_mcp_client_initializes_lists_and_calls_tools(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    async with streamable_http_client(s.url + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "Demo"
            assert init.capabilities.tools is not None
            tools = await session.list_tools()
            assert sorted(t.name for t in tools.tools) == ["add", "measure"]
            add = next(t for t in tools.tools if t.name == "add")
            assert add.description == "Add two numbers"
            assert set(add.inputSchema["properties"]) == {"a", "b"}
            result = await session.call_tool("add", {"a": 2, "b": 40})
            assert not result.isError
            assert result.content[0].text == "42"
            assert result.structuredContent == {"result": 42}
            measured = await session.call_tool("measure", {"length": 2.5})
            assert measured.content[0].text == "2.5 cm"  # the Worker's env reached the tool
            templates = await session.list_resource_templates()
            assert [t.uriTemplate for t in templates.resourceTemplates] == ["greeting://{name}"]
            read_back = await session.read_resource("greeting://edgelet")
            assert read_back.contents[0].text == "Hello, edgelet!"
            bad = await session.call_tool("add", {"a": "x", "b": 1})
            assert bad.isError  # a validation error is the tool's answer, not a crash


def test_mcp_endpoint_refuses_plain_get_as_the_transport_says(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER})
    # a stateless server has no stream to resume: a GET without SSE accept is refused
    r = httpx.get(s.url + "/mcp", timeout=30)
    assert r.status_code in (405, 406), r.text
    r = httpx.post(s.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"accept": "application/json, text/event-stream"}, timeout=30)
    assert r.status_code == 200, r.text
    assert "add" in r.text and "measure" in r.text
