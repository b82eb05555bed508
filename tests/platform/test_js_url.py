"""``js.URL`` and ``js.URLSearchParams`` follow the WHATWG URL standard, as workerd's do.
Before, ``URL`` was ``urllib.parse``: ``URL.new("http://a b/")`` was accepted, ``HTTP://E.com:80/a/../b``
kept as written (workerd gives ``http://e.com/b``), and ``searchParams`` was a dict that kept
one value per name and had no ``getAll``/``append``, nor any effect on the URL."""

from __future__ import annotations

from typing import Any

import pytest

from edgelet.runtime.urls import URL, URLSearchParams

CONFIG = """
    name = "app"
    main = "w.py"
"""

WORKER = r'''
from js import URL, URLSearchParams
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = URL.new(request.url)
        tags = url.searchParams.getAll("tag")
        url.searchParams.append("seen", "yes")
        url.pathname = "/next page"
        try:
            URL.new("http://exa mple.com/")
            bad = "accepted"
        except TypeError as exc:
            bad = str(exc)
        return Response.json({"tags": tags, "next": url.href, "bad": bad,
                              "q": str(URLSearchParams.new({"a": "1 2", "b": "&"}))})
'''


def test_a_worker_parses_urls_as_workerd_does(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    r = s.get("/list?tag=a&tag=b")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["tags"] == ["a", "b"]
    assert out["next"].endswith("/next%20page?tag=a&tag=b&seen=yes")
    assert out["bad"].startswith("Invalid URL: 'http://exa mple.com/': not a URL by the WHATWG URL standard")
    assert out["q"] == "a=1+2&b=%26"


@pytest.mark.parametrize(("url", "base", "href"), [
    ("HTTP://Example.COM:80/a/../b", None, "http://example.com/b"),
    ("https://example.com", None, "https://example.com/"),
    ("/x?y=1", "https://e.com/a/b", "https://e.com/x?y=1"),
    ("c", "https://e.com/a/b", "https://e.com/a/c"),
    ("https://bücher.example/", None, "https://xn--bcher-kva.example/"),
])
def test_parsing_and_serializing(url: str, base: str | None, href: str) -> None:
    assert URL.new(url, base).href == href


@pytest.mark.parametrize("url", ["not a url", "/relative", "http://a b/", "http://", "https://e.com:99999/"])
def test_what_is_not_a_url_is_a_type_error(url: str) -> None:
    with pytest.raises(TypeError, match="^Invalid URL: "):
        URL.new(url)
    assert URL.canParse(url) is False


def test_parts_and_search_params_are_live() -> None:
    u = URL.new("https://user:pw@e.com:8443/p?x=1&x=2#frag")
    assert (u.protocol, u.username, u.password, u.hostname, u.port, u.host, u.pathname, u.search, u.hash,
            u.origin) == ("https:", "user", "pw", "e.com", "8443", "e.com:8443", "/p", "?x=1&x=2", "#frag",
                          "https://e.com:8443")
    params = u.searchParams
    assert params.get("x") == "1" and params.getAll("x") == ["1", "2"] and params.get("nope") is None
    params.set("x", "3")
    params.append("y", "a b")
    assert u.search == "?x=3&y=a+b" and str(u) == "https://user:pw@e.com:8443/p?x=3&y=a+b#frag"
    params.delete("x")
    params.delete("y")
    assert u.search == "" and u.href == "https://user:pw@e.com:8443/p#frag"
    u.port = "not a port"  # ignored, as in JavaScript
    assert u.port == "8443"


def test_search_params_on_their_own() -> None:
    p = URLSearchParams.new("?b=2&a=1&a=3")
    assert list(p) == [("b", "2"), ("a", "1"), ("a", "3")] and p.size == len(p) == 3
    p.sort()
    assert p.toString() == "a=1&a=3&b=2" and p.keys() == ["a", "a", "b"] and p.values() == ["1", "3", "2"]
    assert "a" in p and p["b"] == "2"
    assert str(URLSearchParams([("k", "v"), ("k", "w")])) == "k=v&k=w"
    with pytest.raises(TypeError, match="pairs"):
        URLSearchParams([("only-one",)])
