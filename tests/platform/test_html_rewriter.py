"""HTMLRewriter: Cloudflare's handler semantics, unchanged bytes where nothing is edited,
selector errors naming the selector, and the class reached from a real Worker."""

from __future__ import annotations

import pytest

from edgelet.runtime.html_rewriter import HTMLRewriter, SelectorError
from edgelet.runtime.http_types import Response

PAGE = ('<!DOCTYPE html>\n<html><head><title>Fish &amp; chips</title></head>\n<body class=x>'
        '<!-- note --><a href="/about" data-k=\'1\'>About</a><ul><li>one<li>two</ul>'
        '<img src=cat.png><br/><script>if (a<b && c>d) {}</script>'
        '<div id=main><span>red-<b>or</b>-blue</span></div></body></html>')


def test_a_rewriter_with_no_handlers_returns_the_document_byte_for_byte():
    assert HTMLRewriter().rewrite(PAGE) == PAGE


def test_attributes_are_read_set_and_removed_and_other_markup_is_untouched():
    class Links:
        def element(self, el):
            assert el.tagName == "a" and el.hasAttribute("href") and el.getAttribute("missing") is None
            el.setAttribute("href", "https://example.com" + el.getAttribute("href"))
            el.removeAttribute("data-k")

    out = HTMLRewriter().on("a[href^='/']", Links()).rewrite(PAGE)
    assert '<a href="https://example.com/about">About</a>' in out
    assert out.replace('<a href="https://example.com/about">', "<a href=\"/about\" data-k='1'>") == PAGE


def test_content_insertion_is_escaped_unless_html_is_set():
    def edit(el):
        el.before("<b>", html=True)
        el.after("</b>", {"html": True})
        el.prepend("1 < 2 & ")
        el.append("!", {"html": False})

    out = HTMLRewriter().on("title", {"element": edit}).rewrite(PAGE)
    assert "<b><title>1 &lt; 2 &amp; Fish &amp; chips!</title></b>" in out


def test_replace_remove_inner_content_and_unwrap():
    out = (HTMLRewriter()
           .on("img", {"element": lambda el: el.replace("<i>no cats</i>", html=True)})
           .on("script", {"element": lambda el: el.remove()})
           .on("#main b", {"element": lambda el: el.removeAndKeepContent()})
           .on("li:nth-child(2)", {"element": lambda el: el.setInnerContent("<2>")})
           .rewrite(PAGE))
    assert "<i>no cats</i><br/>" in out and "<script" not in out
    assert "<span>red-or-blue</span>" in out
    assert "<li>one<li>&lt;2&gt;</ul>" in out


def test_text_chunks_end_with_last_in_text_node_and_cover_descendants():
    seen = []

    class Texts:
        def text(self, chunk):
            seen.append((chunk.text, chunk.lastInTextNode))
            if chunk.text == "or":
                chunk.replace("AND")

    out = HTMLRewriter().on("span", Texts()).rewrite(PAGE)
    assert [t for t, _ in seen] == ["red-", "", "or", "", "-blue", ""]
    assert [last for _, last in seen] == [False, True] * 3
    assert "<span>red-<b>AND</b>-blue</span>" in out


def test_document_handlers_see_doctype_comments_text_and_end():
    class Doc:
        def __init__(self):
            self.words = []
            self.doctype_name = None

        def doctype(self, d):
            self.doctype_name = d.name

        def comments(self, c):
            c.text = " rewritten "

        def text(self, t):
            self.words.append(t.text)

        def end(self, end):
            end.append("<!-- served by edgelet -->", html=True)

    doc = Doc()
    out = HTMLRewriter().onDocument(doc).rewrite(PAGE)
    assert doc.doctype_name == "html"
    assert "<!-- rewritten -->" in out and out.endswith("</html><!-- served by edgelet -->")
    assert "Fish &amp; chips" in doc.words and "About" in doc.words


def test_end_tag_handlers_and_renaming_a_tag():
    def element(el):
        el.tagName = "section"
        el.onEndTag(lambda end: end.after("<hr>", html=True))

    out = HTMLRewriter().on("div#main", {"element": element}).rewrite(PAGE)
    assert '<section id="main"><span>' in out and "</section><hr></body>" in out


@pytest.mark.parametrize("selector", ["div[", "a + b", "p:last-child", "::before", ""])
def test_a_selector_that_cannot_be_used_raises_naming_it(selector):
    with pytest.raises(SelectorError) as info:
        HTMLRewriter().on(selector, {})
    assert repr(selector) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_transform_keeps_status_and_headers_of_a_response():
    resp = Response("<p>hi</p>", status=201, headers={"content-type": "text/html", "x-a": "1"})
    out = HTMLRewriter().on("p", {"element": lambda el: el.setAttribute("class", "big")}).transform(resp)
    assert out.status == 201 and out.headers.get("x-a") == "1"
    assert out._body == b'<p class="big">hi</p>'


def test_an_async_handler_is_refused_with_the_fix():
    async def element(el):
        pass

    with pytest.raises(TypeError, match="async def"):
        HTMLRewriter().on("p", {"element": element}).rewrite("<p>x</p>")


WORKER = '''
from workers import HTMLRewriter, Response, WorkerEntrypoint
import js


class Title:
    def element(self, el):
        el.setInnerContent("Rewritten <3")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        page = Response("<html><head><title>old</title></head><body><a href='/x'>x</a></body></html>",
                        headers={"content-type": "text/html"})
        if request.url.endswith("/bad"):
            HTMLRewriter().on("a[", Title())
        rewriter = js.HTMLRewriter.new().on("title", Title()).on(
            "a", {"element": lambda el: el.setAttribute("target", "_blank")})
        return rewriter.transform(page)
'''


def test_a_worker_rewrites_its_response_with_workers_and_js_names(dev):
    s = dev({"wrangler_like.toml": 'name = "rw"\nmain = "w.py"\n', "w.py": WORKER})
    resp = s.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"] == "text/html"
    assert resp.text == ('<html><head><title>Rewritten &lt;3</title></head><body>'
                         '<a href="/x" target="_blank">x</a></body></html>')
    bad = s.get("/bad")
    assert bad.status_code == 500 and "selector 'a[' is not valid CSS" in bad.text
