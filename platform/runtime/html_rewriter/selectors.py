"""CSS selectors for HTMLRewriter: parsed by cssselect, matched against the open-element stack.

Why not match against a tree: HTMLRewriter is a streaming rewriter, so (like Cloudflare's
lol-html) a selector can only look at an element and its ancestors, and at the siblings seen
before it. That rules out ``+``, ``~``, ``:last-child`` and friends; a selector that uses
them, or that is not valid CSS, raises :class:`SelectorError` naming the selector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cssselect
from cssselect import parser as css


class SelectorError(ValueError):
    """A selector HTMLRewriter cannot use (invalid CSS, or not matchable while streaming)."""


@dataclass
class Node:
    """What a selector may look at: one open element, its position and its ancestors."""

    tag: str
    attrs: dict[str, str]
    parent: Node | None
    #: 1-based position among the parent's element children, and among those of its tag
    index: int = 1
    type_index: int = 1
    children: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)

    def child(self, tag: str, attrs: dict[str, str]) -> Node:
        """A new child element of this one, numbered among its siblings."""
        self.children += 1
        self.type_counts[tag] = self.type_counts.get(tag, 0) + 1
        return Node(tag, attrs, self, self.children, self.type_counts[tag])


Matcher = Callable[[Node], bool]


def compile_selector(selector: str) -> Matcher:
    """A function telling whether an element matches ``selector`` (a comma list is OR)."""
    if not isinstance(selector, str) or not selector.strip():
        raise SelectorError(f"HTMLRewriter selector {selector!r} is empty; use a CSS selector such as 'a[href]'")
    try:
        parsed = cssselect.parse(selector)
    except css.SelectorError as exc:
        raise SelectorError(f"HTMLRewriter selector {selector!r} is not valid CSS: {exc}") from None
    matchers = []
    for sel in parsed:
        if sel.pseudo_element:
            raise SelectorError(f"HTMLRewriter selector {selector!r}: pseudo-element "
                                f"::{sel.pseudo_element} is not supported")
        matchers.append(_compile(sel.parsed_tree, selector))
    return lambda node: any(m(node) for m in matchers)


def _unsupported(selector: str, what: str) -> SelectorError:
    return SelectorError(
        f"HTMLRewriter selector {selector!r}: {what} is not supported (a streaming rewriter sees "
        f"only an element, its ancestors and earlier siblings; supported: tag, *, .class, #id, "
        f"[attr], [attr=v|~=|^=|$=|*=||=], :first-child, :nth-child(), :first-of-type, "
        f":nth-of-type(), :not(), descendant and > combinators)")


def _compile(tree: Any, selector: str) -> Matcher:  # noqa: C901 - one branch per node type
    if isinstance(tree, css.Element):
        tag = (tree.element or "*").lower()
        if tag == "*":
            return lambda node: True
        return lambda node: node.tag == tag
    if isinstance(tree, css.CombinedSelector):
        left, right = _compile(tree.selector, selector), _compile(tree.subselector, selector)
        if tree.combinator == ">":
            return lambda node: right(node) and node.parent is not None and left(node.parent)
        if tree.combinator == " ":
            def descendant(node: Node) -> bool:
                if not right(node):
                    return False
                up = node.parent
                while up is not None:
                    if left(up):
                        return True
                    up = up.parent
                return False
            return descendant
        raise _unsupported(selector, f"the {tree.combinator!r} combinator")
    if isinstance(tree, css.Class):
        base, name = _compile(tree.selector, selector), tree.class_name
        return lambda node: base(node) and name in node.attrs.get("class", "").split()
    if isinstance(tree, css.Hash):
        base, ident = _compile(tree.selector, selector), tree.id
        return lambda node: base(node) and node.attrs.get("id") == ident
    if isinstance(tree, css.Attrib):
        return _attrib(tree, _compile(tree.selector, selector), selector)
    if isinstance(tree, css.Negation):
        base, inner = _compile(tree.selector, selector), _compile(tree.subselector, selector)
        return lambda node: base(node) and not inner(node)
    if isinstance(tree, css.Pseudo):
        base = _compile(tree.selector, selector)
        ident = tree.ident.lower()
        if ident == "first-child":
            return lambda node: base(node) and node.index == 1
        if ident == "first-of-type":
            return lambda node: base(node) and node.type_index == 1
        raise _unsupported(selector, f":{ident}")
    if isinstance(tree, css.Function):
        base = _compile(tree.selector, selector)
        name = tree.name.lower()
        if name not in ("nth-child", "nth-of-type"):
            raise _unsupported(selector, f":{name}()")
        try:
            a, b = css.parse_series(tree.arguments)
        except (ValueError, css.SelectorError):
            raise SelectorError(f"HTMLRewriter selector {selector!r}: bad argument to :{name}()") from None
        of_type = name == "nth-of-type"

        def nth(node: Node) -> bool:
            n = node.type_index if of_type else node.index
            if a == 0:
                return n == b
            return (n - b) % a == 0 and (n - b) // a >= 0
        return lambda node: base(node) and nth(node)
    raise _unsupported(selector, type(tree).__name__)


def _attrib(tree: Any, base: Matcher, selector: str) -> Matcher:
    name, op = tree.attrib.lower(), tree.operator
    if tree.namespace:
        raise _unsupported(selector, "a namespaced attribute")
    if op == "exists":
        return lambda node: base(node) and name in node.attrs
    want = tree.value.value if tree.value is not None else ""
    if tree.flag == "i":
        want = want.lower()
    tests: dict[str, Callable[[str], bool]] = {
        "=": lambda v: v == want,
        "~=": lambda v: want in v.split(),
        "|=": lambda v: v == want or v.startswith(want + "-"),
        "^=": lambda v: bool(want) and v.startswith(want),
        "$=": lambda v: bool(want) and v.endswith(want),
        "*=": lambda v: bool(want) and want in v,
    }
    test = tests.get(op)
    if test is None:
        raise _unsupported(selector, f"the attribute operator {op!r}")
    fold = tree.flag == "i"

    def match(node: Node) -> bool:
        value = node.attrs.get(name)
        if value is None or not base(node):
            return False
        return test(value.lower() if fold else value)
    return match
