"""The demo app (README's first command) installs no packages at its first start: its Workers
declare none, so edgelet's own pyproject.toml beside wrangler_like.toml is not taken for theirs
(that was a 35 s pip install of edgelet's dependencies on a fresh clone)."""

from __future__ import annotations

from conftest import ROOT

from edgelet.config import load_config
from edgelet.python_deps import declared, find_pyproject


def test_every_demo_worker_declares_no_package() -> None:
    config = load_config([ROOT / "wrangler_like.toml"], cwd=ROOT)
    for worker in config.workers:
        pyproject = find_pyproject(worker)
        assert pyproject == ROOT / "workers" / "pyproject.toml", (worker.name, pyproject)
        assert declared(pyproject) == [], worker.name
