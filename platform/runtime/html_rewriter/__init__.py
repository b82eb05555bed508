"""Cloudflare's ``HTMLRewriter`` for Python Workers (``from workers import HTMLRewriter``).

``tokens`` cuts a document into tokens with the standard library's HTML parser,
``selectors`` matches cssselect-parsed selectors against the open elements, ``content`` is
what handlers receive, and ``rewriter`` ties them together.
"""

from .content import Comment, Doctype, DocumentEnd, Element, EndTag, Text
from .rewriter import HTMLRewriter
from .selectors import SelectorError

__all__ = ["Comment", "Doctype", "DocumentEnd", "Element", "EndTag", "HTMLRewriter", "SelectorError", "Text"]
