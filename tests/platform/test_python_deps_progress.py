"""Installing a Worker's declared packages shows a progress bar on a terminal, none piped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import EDGELET, free_port, write_app
from ptyrun import BAR, run_in_terminal
from test_python_deps import build_wheel, files


@pytest.fixture
def index(tmp_path: Path) -> dict[str, str]:
    """A local package folder and the pip settings that make `edgelet dev` install from it."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    build_wheel(tmp_path, "edgelet-tinydep", "1.0", folder)
    return {"PIP_FIND_LINKS": str(folder), "PIP_NO_INDEX": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_the_install_shows_a_bar_on_a_terminal(tmp_path: Path, index: dict[str, str]) -> None:
    app = write_app(tmp_path / "app", files("edgelet-tinydep==1.0"))
    code, out = run_in_terminal([*EDGELET, "dev", "--port", str(free_port())], app, env=index,
                                interrupt_when=lambda text: "Ready on" in text)
    assert code == 0, out
    # the bar's last frame: its description, the bar itself, 2/2 (the package collected, then
    # installed); the start-up table below it is drawn with the same glyph, so one line holds all
    assert re.search(rf"Worker 'app': installed edgelet-tinydep==1\.0\S*\s+\S*{BAR}+.*2/2", out), out


def test_the_install_piped_prints_no_bar(dev, tmp_path: Path, index: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in index.items():
        monkeypatch.setenv(key, value)
    s = dev(files("edgelet-tinydep==1.0"))
    assert s.get("/").text == "tinydep 1.0, vendored"
    logs = s.logs()
    assert "installing edgelet-tinydep==1.0" in logs and "installed 1 package(s)" in logs
    assert BAR not in logs and "\x1b[" not in logs, logs
