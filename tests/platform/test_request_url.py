"""``Request(url)`` takes only what workerd's ``new Request(url)`` takes: an absolute URL by the
WHATWG URL standard. Before, ``Request("not a url")`` and ``Request("/relative")`` were
accepted, so a Worker that built one worked locally and threw ``TypeError: Invalid URL`` on
Cloudflare (a Worker has no base URL). The URL is also serialized as a browser would
(scheme and host lower-cased, default port and dot segments dropped, a root path added)."""

from __future__ import annotations

from typing import Any

import pytest

from edgelet.runtime.http_types import Request

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from workers import Request, Response, WorkerEntrypoint, fetch


def outcome(fn):
    try:
        return "ok " + fn().url
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        out = {name: outcome(lambda u=url: Request(u)) for name, url in [
            ("junk", "not a url"), ("relative", "/api/items"), ("no_host", "http://"),
            ("space_in_host", "http://exa mple.com/"), ("absolute", "https://example.com/a?b=1"),
            ("normalized", "HTTP://Example.COM:80/a/../b"), ("copy", request)]}
        try:
            await fetch("not a url")
            out["fetch"] = "no error"
        except Exception as exc:
            out["fetch"] = f"{type(exc).__name__}: {exc}"
        return Response.json(out)
'''


def test_a_worker_building_a_request_from_a_bad_url_gets_a_type_error(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    r = s.get("/here?x=1")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["junk"] == ("TypeError: Invalid URL: Request(): 'not a url' is not an absolute URL; a Worker has no "
                           "base URL to resolve a path against; give a full URL such as 'https://example.com/path'")
    assert out["relative"].startswith("TypeError: Invalid URL: Request(): '/api/items' is not an absolute URL")
    assert out["no_host"].startswith("TypeError: Invalid URL: Request(): 'http://'")
    assert "check the scheme, the host (no spaces) and the port" in out["space_in_host"]
    assert out["absolute"] == "ok https://example.com/a?b=1"
    assert out["normalized"] == "ok http://example.com/b"
    assert out["copy"].startswith("ok http://") and out["copy"].endswith("/here?x=1")
    assert out["fetch"].startswith("FetchError: TypeError: Fetch API cannot load: 'not a url'")


@pytest.mark.parametrize("url", ["not a url", "/relative", "relative/path", "", "http://", "https://a b/",
                                 "http://[::1/", "http://example.com:99999/"])
def test_request_refuses_what_is_not_an_absolute_url(url: str) -> None:
    with pytest.raises(TypeError, match=r"^Invalid URL: Request\(\): "):
        Request(url)


@pytest.mark.parametrize(("url", "href"), [("https://example.com", "https://example.com/"),
                                           ("http://localhost:8787/x?y=1#z", "http://localhost:8787/x?y=1#z"),
                                           ("https://do/path?q=1", "https://do/path?q=1"),
                                           ("http://[::1]:8080/a/./b", "http://[::1]:8080/a/b")])
def test_request_keeps_absolute_urls_as_a_browser_serializes_them(url: str, href: str) -> None:
    assert Request(url).url == href
    assert Request(Request(url), method="POST").url == href
