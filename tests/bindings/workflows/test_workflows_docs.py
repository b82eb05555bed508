"""docs/workflows.md's "All together" example, run as written: its config, its Worker and
its test (marked ``<!-- example: config|app|test -->`` in the page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgelet.testing import Platform

ROOT = Path(__file__).resolve().parents[3]


def blocks() -> dict[str, str]:
    text = (ROOT / "docs" / "workflows.md").read_text()
    found = dict(re.findall(r"<!-- example: (\w+) -->\n(?:<!-- doc-test:[^\n]*-->\n)?```\w+\n(.*?)```", text, re.S))
    assert set(found) == {"config", "app", "test"}, "docs/workflows.md lost a marked example block"
    return found


@pytest.mark.asyncio
async def test_the_all_together_example_runs_as_written(tmp_path: Path) -> None:
    example = blocks()
    (tmp_path / "wrangler_like.toml").write_text(example["config"])
    (tmp_path / "shop.py").write_text(example["app"])
    scope: dict[str, object] = {}
    exec(compile(example["test"], "docs/workflows.md (example: test)", "exec"), scope)  # noqa: S102
    async with Platform(tmp_path / "wrangler_like.toml", clock="virtual") as p:
        await scope["test_checkout"](p)  # type: ignore[operator]
