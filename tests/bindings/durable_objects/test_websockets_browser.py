"""Two headless Chromium pages chat through the chat room app (Playwright driving Debian's
chromium; never `playwright install`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "ws-chatroom"
CHROMIUM = "/usr/bin/chromium"

def _browser_or_skip():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium: `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs playwright: `pip install 'playwright==1.65.2'` (the browser is "
                    "Debian's chromium; never run `playwright install`)")
    return sync_playwright


def test_two_browser_pages_chat(dev, tmp_path):
    sync_playwright = _browser_or_skip()
    folder = tmp_path / "app"
    shutil.copytree(APP, folder)
    server = dev(None, "--in-memory", cwd=folder)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            ann = browser.new_page()
            bob = browser.new_page()
            ann.goto(f"{server.url}/?room=browser&user=ann")
            bob.goto(f"{server.url}/?room=browser&user=bob")
            ann.wait_for_selector("text=connected as ann", timeout=15000)
            bob.wait_for_selector("text=connected as bob", timeout=15000)
            ann.fill("#text", "hello from ann")
            ann.click("button")
            bob.wait_for_selector("text=ann: hello from ann", timeout=10000)
            bob.fill("#text", "hi ann, bob here")
            bob.press("#text", "Enter")
            ann.wait_for_selector("text=bob: hi ann, bob here", timeout=10000)
            lines = ann.locator("#log .line").all_inner_texts()
            assert lines[-2:] == ["ann: hello from ann", "bob: hi ann, bob here"]
            ann.screenshot(path=str(tmp_path / "chat-ann.png"))
            if os.environ.get("EDGELET_SCREENSHOTS"):  # a folder to keep it in, for a person
                shutil.copy(tmp_path / "chat-ann.png", os.environ["EDGELET_SCREENSHOTS"])
        finally:
            browser.close()
