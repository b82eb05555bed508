"""What HTMLRewriter handlers receive: Element, EndTag, Text, Comment, Doctype, DocumentEnd.

Names follow Cloudflare's (``setAttribute``, ``removeAndKeepContent``, ``lastInTextNode``)
with snake_case aliases. Inserted content is text, HTML-escaped, unless the options say
``html`` (``el.append("<b>x</b>", {"html": True})`` or ``el.append(..., html=True)``).
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterator
from typing import Any


def content_text(content: Any, options: Any = None, html: bool | None = None) -> str:
    """The markup to insert for ``content``: escaped unless ``html`` is set."""
    if html is None:
        if isinstance(options, dict):
            html = bool(options.get("html"))
        elif options is not None:
            html = bool(getattr(options, "html", False))
        else:
            html = False
    text = content if isinstance(content, str) else str(content)
    return text if html else _html.escape(text, quote=False)


class _Insertions:
    """``before``/``after`` lists and a replacement, shared by every rewritable unit.

    Later ``after`` calls land closer to the unit (each is inserted right after it), as in
    lol-html; ``before`` calls keep their order.
    """

    def __init__(self) -> None:
        self._before: list[str] = []
        self._after: list[str] = []
        self._replacement: str | None = None

    def before(self, content: Any, options: Any = None, *, html: bool | None = None) -> Any:
        self._before.append(content_text(content, options, html))
        return self

    def after(self, content: Any, options: Any = None, *, html: bool | None = None) -> Any:
        self._after.insert(0, content_text(content, options, html))
        return self

    def replace(self, content: Any, options: Any = None, *, html: bool | None = None) -> Any:
        self._replacement = content_text(content, options, html)
        return self

    def remove(self) -> Any:
        self._replacement = ""
        return self

    @property
    def removed(self) -> bool:
        return self._replacement is not None

    def _wrap(self, own: str) -> str:
        body = own if self._replacement is None else self._replacement
        return "".join(self._before) + body + "".join(self._after)


class Element(_Insertions):
    """A start tag and, through its methods, the element's content and end tag."""

    def __init__(self, tag: str, attrs: list[tuple[str, str | None]], raw: str, self_closing: bool,
                 void: bool) -> None:
        super().__init__()
        self._tag = tag
        self._orig_tag = tag
        self._attrs: dict[str, str] = {}
        for name, value in attrs:
            self._attrs.setdefault(name, value if value is not None else "")
        self._attrs_changed = False
        self._raw = raw
        self.selfClosing = self_closing
        self.canHaveContent = not void
        self._prepend: list[str] = []
        self._append: list[str] = []
        self._inner: str | None = None
        self._unwrap = False
        self._end_handlers: list[Any] = []

    # -- the tag ------------------------------------------------------------------------
    @property
    def tagName(self) -> str:  # noqa: N802 - Cloudflare's name
        return self._tag

    @tagName.setter
    def tagName(self, value: str) -> None:  # noqa: N802
        self._tag = str(value).lower()

    tag_name = tagName

    @property
    def namespaceURI(self) -> str:  # noqa: N802
        return "http://www.w3.org/1999/xhtml"

    @property
    def attributes(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._attrs.items()))

    def getAttribute(self, name: str) -> str | None:  # noqa: N802
        return self._attrs.get(name.lower())

    def hasAttribute(self, name: str) -> bool:  # noqa: N802
        return name.lower() in self._attrs

    def setAttribute(self, name: str, value: Any) -> Element:  # noqa: N802
        self._attrs[name.lower()] = str(value)
        self._attrs_changed = True
        return self

    def removeAttribute(self, name: str) -> Element:  # noqa: N802
        if self._attrs.pop(name.lower(), None) is not None:
            self._attrs_changed = True
        return self

    get_attribute, has_attribute = getAttribute, hasAttribute
    set_attribute, remove_attribute = setAttribute, removeAttribute

    # -- content ------------------------------------------------------------------------
    def prepend(self, content: Any, options: Any = None, *, html: bool | None = None) -> Element:
        self._prepend.insert(0, content_text(content, options, html))
        return self

    def append(self, content: Any, options: Any = None, *, html: bool | None = None) -> Element:
        self._append.append(content_text(content, options, html))
        return self

    def setInnerContent(self, content: Any, options: Any = None, *,  # noqa: N802
                        html: bool | None = None) -> Element:
        self._inner = content_text(content, options, html)
        self._prepend.clear()
        self._append.clear()
        return self

    def removeAndKeepContent(self) -> Element:  # noqa: N802
        self._unwrap = True
        return self

    def onEndTag(self, handler: Any) -> None:  # noqa: N802
        """``handler(end_tag)`` runs when the element's end tag is reached."""
        self._end_handlers.append(handler)

    set_inner_content, remove_and_keep_content, on_end_tag = setInnerContent, removeAndKeepContent, onEndTag

    # -- output -------------------------------------------------------------------------
    def _start_tag(self) -> str:
        if not self._attrs_changed and self._tag == self._orig_tag:
            return self._raw
        parts = [self._tag]
        for name, value in self._attrs.items():
            parts.append(f'{name}="{_html.escape(value, quote=True)}"')
        return "<" + " ".join(parts) + ("/>" if self.selfClosing else ">")

    def _end_tag_text(self, raw: str) -> str:
        if raw and self._tag != self._orig_tag:
            return f"</{self._tag}>"
        return raw

    def __repr__(self) -> str:
        return f"<Element {self._tag}>"


class EndTag(_Insertions):
    """An element's end tag, as ``onEndTag`` handlers see it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class Text(_Insertions):
    """A chunk of a text node. ``text`` is as in the source (entities not decoded)."""

    def __init__(self, text: str, last: bool) -> None:
        super().__init__()
        self.text = text
        self.lastInTextNode = last
        self.last_in_text_node = last

    def __repr__(self) -> str:
        return f"<Text {self.text!r} last={self.lastInTextNode}>"


class Comment(_Insertions):
    """An HTML comment; assigning ``text`` rewrites it."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Doctype:
    """The ``<!DOCTYPE ...>`` declaration (read-only, as in Cloudflare)."""

    def __init__(self, raw: str) -> None:
        self._removed = False
        words = raw.split(None, 1)
        rest = words[1] if len(words) > 1 else ""
        self.name: str | None = rest.split()[0].lower() if rest.split() else None
        quoted = [q for i, q in enumerate(rest.split('"')) if i % 2 == 1]
        upper = rest.upper()
        self.publicId: str | None = quoted[0] if "PUBLIC" in upper and quoted else None
        self.systemId: str | None = (quoted[1] if "PUBLIC" in upper and len(quoted) > 1
                                     else quoted[0] if "SYSTEM" in upper and quoted else None)

    def remove(self) -> Doctype:
        self._removed = True
        return self

    @property
    def removed(self) -> bool:
        return self._removed


class DocumentEnd:
    """The end of the document: ``append`` adds content after everything else."""

    def __init__(self) -> None:
        self._append: list[str] = []

    def append(self, content: Any, options: Any = None, *, html: bool | None = None) -> DocumentEnd:
        self._append.append(content_text(content, options, html))
        return self
