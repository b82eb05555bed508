"""``HTMLRewriter``: Cloudflare's CSS-selector-driven HTML rewriter, for Python Workers.

``HTMLRewriter().on("a[href]", handler).onDocument(doc_handler).transform(response)``
returns a new Response whose body is the rewritten document. Handlers are objects (or
dicts) with ``element``, ``comments``, ``text`` methods (``on``) and ``doctype``,
``comments``, ``text``, ``end`` (``onDocument``). Text and comment handlers of ``on`` see
the text and comments inside the matched element, its descendants included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .content import Comment, Doctype, DocumentEnd, Element, EndTag, Text
from .selectors import Matcher, Node, SelectorError, compile_selector
from .tokens import Token, tokenize

#: elements that never have content or an end tag
VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr".split())
#: a start tag of the key closes an open element of the same name first (``<li>a<li>b``)
_SELF_CLOSING_SIBLINGS = frozenset("li p dt dd option tr td th".split())


@dataclass
class _Frame:
    node: Node
    element: Element | None
    #: handler objects whose selector matched this element (their text/comments apply inside)
    handlers: list[Any]
    out: list[str] = field(default_factory=list)
    start_text: str = ""


def _method(handler: Any, name: str) -> Callable[..., Any] | None:
    fn = handler.get(name) if isinstance(handler, dict) else getattr(handler, name, None)
    return fn if callable(fn) else None


def _call(fn: Callable[..., Any], arg: Any) -> None:
    result = fn(arg)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(f"HTMLRewriter handler {getattr(fn, '__qualname__', fn)!r} is async; edgelet runs "
                        f"handlers as the document is rewritten, so define it with `def`, not `async def`")


class HTMLRewriter:
    """Collects handlers; ``transform`` applies them to a Response (or a str/bytes body)."""

    def __init__(self) -> None:
        self._element_handlers: list[tuple[str, Matcher, Any]] = []
        self._document_handlers: list[Any] = []

    @classmethod
    def new(cls) -> HTMLRewriter:
        """``js.HTMLRewriter.new()``, as Pyodide-era scripts write it."""
        return cls()

    def on(self, selector: str, handler: Any) -> HTMLRewriter:
        """Call ``handler``'s ``element``/``comments``/``text`` for elements matching ``selector``;
        a selector that is not valid CSS raises ``SelectorError`` (a ValueError) naming it."""
        self._element_handlers.append((selector, compile_selector(selector), handler))
        return self

    def onDocument(self, handler: Any) -> HTMLRewriter:  # noqa: N802 - Cloudflare's name
        self._document_handlers.append(handler)
        return self

    on_document = onDocument

    def transform(self, response: Any) -> Any:
        """A new Response with the rewritten body (status and headers kept). A str or bytes
        argument returns the rewritten str."""
        from edgelet.runtime.http_types import Response
        if isinstance(response, (str, bytes, bytearray)):
            text = response if isinstance(response, str) else bytes(response).decode("utf-8", "replace")
            return self.rewrite(text)
        body = getattr(response, "_body", None)
        if body is None:
            raise TypeError(f"HTMLRewriter.transform takes a Response, got {type(response).__name__}")
        source = bytes(body).decode("utf-8", errors="replace")
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return Response(self.rewrite(source).encode("utf-8"), status=response.status, headers=headers)

    # -- the rewrite itself ------------------------------------------------------------------
    def rewrite(self, source: str) -> str:
        """Apply every handler to the document ``source``; return the new document."""
        root = _Frame(Node("#document", {}, None), None, [])
        stack = [root]
        for token in tokenize(source):
            kind = token.kind
            if kind == "start":
                self._start(token, stack)
            elif kind == "end":
                self._end(token, stack)
            elif kind == "text":
                self._text(token.raw, stack)
            elif kind == "comment":
                self._comment(token, stack)
            elif kind == "doctype":
                doctype = Doctype(token.data)
                for h in self._document_handlers:
                    fn = _method(h, "doctype")
                    if fn is not None:
                        _call(fn, doctype)
                stack[-1].out.append("" if doctype.removed else token.raw)
            else:
                stack[-1].out.append(token.raw)
        while len(stack) > 1:
            self._close(stack, "")
        end = DocumentEnd()
        for h in self._document_handlers:
            fn = _method(h, "end")
            if fn is not None:
                _call(fn, end)
        return "".join(root.out) + "".join(end._append)

    def _start(self, token: Token, stack: list[_Frame]) -> None:
        tag = token.tag
        if tag in _SELF_CLOSING_SIBLINGS and stack[-1].node.tag == tag:
            self._close(stack, "")
        parent = stack[-1]
        attrs = token.attrs or []
        node = parent.node.child(tag, {k: (v if v is not None else "") for k, v in reversed(attrs)})
        void = tag in VOID or token.self_closing
        element = Element(tag, attrs, token.raw, token.self_closing, tag in VOID)
        matched = [h for _, match, h in self._element_handlers if match(node)]
        for handler in matched:
            fn = _method(handler, "element")
            if fn is not None:
                _call(fn, element)
        frame = _Frame(node, element, matched, start_text=element._start_tag())
        if void:
            parent.out.append(self._compose(frame, ""))
        else:
            stack.append(frame)

    def _end(self, token: Token, stack: list[_Frame]) -> None:
        for depth in range(len(stack) - 1, 0, -1):
            if stack[depth].node.tag == token.tag:
                while len(stack) - 1 > depth:
                    self._close(stack, "")  # implied end of an element left open inside
                self._close(stack, token.raw)
                return
        stack[-1].out.append(token.raw)  # a stray end tag: kept as it is, as browsers see it

    def _close(self, stack: list[_Frame], end_raw: str) -> None:
        frame = stack.pop()
        stack[-1].out.append(self._compose(frame, end_raw))

    @staticmethod
    def _compose(frame: _Frame, end_raw: str) -> str:
        el = frame.element
        assert el is not None
        end_tag = EndTag(el.tagName)
        for handler in el._end_handlers:
            _call(handler, end_tag)
        end_text = end_tag._wrap(el._end_tag_text(end_raw))
        if el.removed:
            return el._wrap("")
        inner = el._inner if el._inner is not None else "".join(frame.out)
        start = "" if el._unwrap else frame.start_text
        if el._unwrap:
            end_text = "".join(end_tag._before) + "".join(end_tag._after)
        return el._wrap(start + "".join(el._prepend) + inner + "".join(el._append) + end_text)

    def _content_handlers(self, stack: list[_Frame], name: str) -> list[Callable[..., Any]]:
        found = []
        for frame in stack[1:]:
            for h in frame.handlers:
                fn = _method(h, name)
                if fn is not None:
                    found.append(fn)
        for h in self._document_handlers:
            fn = _method(h, name)
            if fn is not None:
                found.append(fn)
        return found

    def _text(self, raw: str, stack: list[_Frame]) -> None:
        handlers = self._content_handlers(stack, "text")
        if not handlers:
            stack[-1].out.append(raw)
            return
        # one chunk with the text, then the empty last chunk, as lol-html delivers a text node
        for chunk_text, last in ((raw, False), ("", True)):
            chunk = Text(chunk_text, last)
            for fn in handlers:
                _call(fn, chunk)
            stack[-1].out.append(chunk._wrap(chunk.text))

    def _comment(self, token: Token, stack: list[_Frame]) -> None:
        handlers = self._content_handlers(stack, "comments")
        if not handlers:
            stack[-1].out.append(token.raw)
            return
        comment = Comment(token.data)
        for fn in handlers:
            _call(fn, comment)
        own = token.raw if comment.text == token.data else f"<!--{comment.text}-->"
        stack[-1].out.append(comment._wrap(own))


__all__ = ["HTMLRewriter", "SelectorError"]
