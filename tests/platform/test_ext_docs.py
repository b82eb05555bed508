"""docs/html_rewriter.md, docs/worker_loaders.md and docs/ai.md examples, run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def block(page: str, lang: str, starts: str) -> str:
    blocks = re.findall(r"```(\w+)\n(.*?)```", (DOCS / page).read_text(), re.S)
    return next(code for kind, code in blocks if kind == lang and code.lstrip().startswith(starts))


def test_the_html_rewriter_example_runs_as_written(dev):
    s = dev({"wrangler_like.toml": block("html_rewriter.md", "toml", "# wrangler_like.toml"),
             "page.py": block("html_rewriter.md", "python", "# page.py")})
    text = s.get("/").text
    assert "<title>New title</title>" in text
    assert '<a href="https://example.com/docs">Docs →</a>' in text
    assert "Buy now" not in text and "build 41" not in text
    assert text.endswith("</html><footer>rewritten by edgelet</footer>")


def test_the_worker_loader_example_runs_as_written(dev):
    s = dev({"wrangler_like.toml": block("worker_loaders.md", "toml", "# wrangler_like.toml"),
             "entry.py": block("worker_loaders.md", "python", "# entry.py")})
    assert s.get("/").text == "Hello from a loaded Worker, edgelet!"
    assert s.get("/add").text == "5"


async def test_the_ai_testing_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "wrangler.toml").write_text(block("ai.md", "toml", "# wrangler.toml"))
    (tmp_path / "chat.py").write_text(block("ai.md", "python", "# chat.py"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block("ai.md", "python", "# test_chat.py"), "docs/ai.md", "exec"), namespace)
    await namespace["test_chat"]()  # type: ignore[operator]
