"""The explorer has the control API's guard: loopback clients, or the token as a Bearer
header; and it is answered at both of its paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import non_loopback_ip

from .explorer_app import APP

PATHS = ["/cdn-cgi/explorer/", "/cdn-cgi/explorer/kv", "/cdn-cgi/local/explorer/",
         "/cdn-cgi/local/explorer/workflows/approval/x", "/cdn-cgi/explorer/static/explorer.js"]


def test_pages_answer_loopback_at_both_paths(dev: Any) -> None:
    s = dev(APP)
    for path in PATHS:
        r = s.get(path)
        assert r.status_code == 200, (path, r.status_code)
    page = s.get("/cdn-cgi/local/explorer/queues").text
    # links and the script stay under the path the page was opened at
    assert 'href="/cdn-cgi/local/explorer/kv"' in page and "/cdn-cgi/local/explorer/static/explorer.js" in page
    assert 'data-api="/cdn-cgi/edgelet/api"' in page
    assert s.get("/cdn-cgi/explorer", follow_redirects=False).status_code == 308
    missing = s.get("/cdn-cgi/explorer/nothing-here")
    assert missing.status_code == 404 and "no section “nothing-here”" in missing.text


def test_remote_clients_need_the_token(dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    monkeypatch.setenv("EDGELET_API_TOKEN", "s3cret")
    s = dev(APP, "--ip", "0.0.0.0")
    for path in PATHS:
        r = httpx.get(f"http://{ip}:{s.port}{path}", timeout=10)
        assert r.status_code == 403, (path, r.status_code)
        assert "EDGELET_API_TOKEN" in r.json()["errors"][0]["message"]
        ok = httpx.get(f"http://{ip}:{s.port}{path}", headers={"authorization": "Bearer s3cret"}, timeout=10)
        assert ok.status_code == 200, (path, ok.status_code)
