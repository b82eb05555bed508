"""docs/HACKING.md's "Adding a binding" walk-through, kept honest: the example ``counter``
package in tests/fixtures/example_binding is loaded through ``EDGELET_BINDINGS_PATH``,
driven through a real Worker and ``p.counter(...)``, and every file the walk-through
quotes must equal the file in the test tree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_app

import edgelet.bindings
from edgelet.config import ConfigError
from edgelet.testing import Platform

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "fixtures" / "example_binding"
HACKING = ROOT / "docs" / "HACKING.md"

APP = {
    "wrangler_like.toml": """
        name = "site"
        main = "w.py"
        counters = [{ binding = "HITS", start = 10 }]
    """,
    "w.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/bad"):
                    try:
                        await self.env.HITS.increment(0)
                    except ValueError as exc:
                        return Response(str(exc), status=400)
                return Response(str(await self.env.HITS.increment()))
    """,
}


@pytest.fixture
def example_binding(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``counter`` kind, visible to the host (this process) and to its isolates (the
    environment variable); this process's ``edgelet.bindings.__path__`` is put back after."""
    monkeypatch.setattr(edgelet.bindings, "__path__", list(edgelet.bindings.__path__))
    monkeypatch.setenv("EDGELET_BINDINGS_PATH", str(EXAMPLE))
    yield


async def test_the_example_binding_works_through_a_worker_and_its_test_handle(
        example_binding: None, tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        assert await (await p.fetch("/")).text() == "11"
        assert await (await p.fetch("/")).text() == "12"
        hits = p.counter("HITS")
        assert await hits.get() == 12
        assert await hits.increment(5) == 17
        assert await (await p.fetch("/")).text() == "18"
        bad = await p.fetch("/bad")
        assert bad.status == 400
        assert await bad.text() == "HITS.increment(by): by must be a whole number >= 1, got 0"
        with pytest.raises(LookupError, match="no counter binding named 'NOPE'"):
            p.counter("NOPE")


def test_its_config_errors_name_the_key(example_binding: None, tmp_path: Path) -> None:
    write_app(tmp_path, {**APP, "wrangler_like.toml": """
        name = "site"
        main = "w.py"
        counters = [{ binding = "HITS", start = "ten" }]
    """})
    with pytest.raises(ConfigError, match=r"counters\[0\]\.start: expected a whole number"):
        Platform(tmp_path / "wrangler_like.toml")._load()


def test_without_the_hook_the_kind_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGELET_BINDINGS_PATH", raising=False)
    assert "counter" not in {p.kind for p in edgelet.bindings.discover_plugins()}


def quoted_files() -> dict[str, str]:
    """Code blocks of the walk-through whose first line is ``# tests/fixtures/...``."""
    quoted: dict[str, str] = {}
    for block in re.findall(r"```python\n(.*?)```", HACKING.read_text(), re.S):
        first, _, rest = block.partition("\n")
        if first.startswith("# tests/fixtures/example_binding/"):
            quoted[first[2:].strip()] = rest
    return quoted


def test_the_walk_through_quotes_the_example_package_verbatim() -> None:
    quoted = quoted_files()
    package = sorted(str(f.relative_to(ROOT)) for f in (EXAMPLE / "counter").glob("*.py")
                     if f.name != "__init__.py")
    assert sorted(quoted) == package, "docs/HACKING.md must quote every module of the example"
    for rel, text in quoted.items():
        assert text == (ROOT / rel).read_text(), f"docs/HACKING.md's copy of {rel} is out of date"
