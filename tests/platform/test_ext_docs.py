"""docs/html_rewriter.md and docs/worker_loaders.md examples, run as written with a real `edgelet dev`
(docs/ai.md's test runs in tests/platform/test_doc_examples.py with its page's app)."""

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

