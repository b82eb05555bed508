"""Browser fixtures: Debian's chromium driven by the ``playwright`` package (never a
downloaded browser), a page that fails the test on any console error, and the explorer's
test app running in a real ``edgelet dev``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .explorer_app import APP

CHROMIUM = os.environ.get("EDGELET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
#: where the screenshots go: a temporary folder by default, so a test run leaves the tree
#: clean; `EDGELET_SCREENSHOTS=docs/img pytest tests/platform/explorer` refreshes the ones
#: docs/explorer.md shows
SHOTS = Path(os.environ.get("EDGELET_SCREENSHOTS") or Path(tempfile.gettempdir()) / "edgelet-screenshots")


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need the playwright package: pip install -e '.[test]'"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return (f"no chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) "
                f"or point EDGELET_CHROMIUM at a Chromium binary; never `playwright install`")
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        b = pw.chromium.launch(executable_path=path, args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A browser page that records console errors and uncaught exceptions; the test fails on
    any of them unless it said which HTTP error statuses it provokes (bad-input tests)."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.errors: list[str] = []
        self.expected_statuses: set[int] = set()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        if any(f"status of {s}" in text for s in self.expected_statuses):
            return  # the browser's note on an API answer the test provoked on purpose
        self.errors.append(text)

    def shot(self, name: str, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"explorer-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    p = Page(browser)
    yield p
    p.context.close()
    assert not p.errors, f"console errors in the explorer: {p.errors}"


@pytest.fixture
def shop(dev: Any) -> Any:
    """The test app running, its state seeded through the Worker."""
    server = dev(APP)
    assert server.get("/setup").text == "set up"
    return server
