"""docs/websockets.md's echo example, run as written against a real `edgelet dev` (its chat test
runs in tests/platform/test_doc_examples.py with the page's app)."""

from __future__ import annotations

import re
from pathlib import Path

from websockets.sync.client import connect

DOC = (Path(__file__).resolve().parents[2] / "docs" / "websockets.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, re.S)


def block(lang: str, starts: str) -> str:
    return next(code for kind, code in BLOCKS if kind == lang and code.lstrip().startswith(starts))


def test_the_echo_example_runs_as_written(dev):
    s = dev({"wrangler_like.toml": block("toml", 'name = "echo"'), "echo.py": block("python", "# echo.py")})
    client = block("python", "from websockets.sync.client").replace("127.0.0.1:8787", f"127.0.0.1:{s.port}")
    exec(compile(client, "docs/websockets.md", "exec"), {})
    with connect(f"ws://127.0.0.1:{s.port}/") as ws:
        ws.send(b"\x00bin")
        assert ws.recv(5) == b"\x00bin"
    assert s.get("/").status_code == 426

