"""docs/r2.md's example Worker and commands, run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = (Path(__file__).resolve().parents[3] / "docs" / "r2.md").read_text()


def block(lang: str, index: int = 0) -> str:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)[index]


def test_the_documented_worker(dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": block("toml"), "files.py": block("python", 0)})
    put = s.request("PUT", "/docs/hi.txt", content=b"hello", headers={"content-type": "text/plain"})
    assert put.json()["size"] == 5
    got = s.get("/docs/hi.txt")
    assert got.text == "hello" and got.headers["content-type"] == "text/plain"
    assert s.get("/docs/hi.txt", headers={"range": "bytes=1-3"}).text == "ell"
    assert s.get("/").json() == {"objects": [], "folders": ["docs/"]}
    assert s.get("/docs/hi.txt", headers={"if-none-match": got.headers["etag"]}).status_code == 304
    assert s.request("DELETE", "/docs/hi.txt").text == "deleted"


async def test_the_documented_test(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "wrangler_like.toml").write_text(block("toml"))
    (tmp_path / "files.py").write_text(block("python", 0))
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(block("python", 2), scope)
    await scope["test_download"]()
