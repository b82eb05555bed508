"""Cut an HTML document into tokens that tile it exactly, with the standard library's parser.

``html.parser`` (CPython's maintained HTML tokenizer: script/style raw text, bogus comments,
character references) reports each token with its position; every token's source text is the
span up to the next one, so unchanged parts of a document come out byte for byte as they
went in, which is what Cloudflare's streaming rewriter does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Token:
    #: "start", "end", "text", "comment", "doctype" or "other" (processing instructions, CDATA)
    kind: str
    raw: str
    tag: str = ""
    attrs: list[tuple[str, str | None]] | None = None
    self_closing: bool = False
    #: a comment's text, without ``<!--`` and ``-->``
    data: str = ""


class _Collector(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, Token]] = []
        self._lines = [0]
        for i, ch in enumerate(source):
            if ch == "\n":
                self._lines.append(i + 1)

    def _at(self) -> int:
        line, col = self.getpos()
        return self._lines[line - 1] + col

    def _add(self, token: Token) -> None:
        self.found.append((self._at(), token))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(Token("start", "", tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(Token("start", "", tag, attrs, self_closing=True))

    def handle_endtag(self, tag: str) -> None:
        self._add(Token("end", "", tag))

    def handle_data(self, data: str) -> None:
        self._add(Token("text", ""))

    def handle_comment(self, data: str) -> None:
        self._add(Token("comment", "", data=data))

    def handle_decl(self, decl: str) -> None:
        kind = "doctype" if decl.lower().startswith("doctype") else "other"
        self._add(Token(kind, "", data=decl))

    def handle_pi(self, data: str) -> None:
        self._add(Token("other", ""))

    def unknown_decl(self, data: str) -> None:
        self._add(Token("other", ""))


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``; joined, their ``raw`` texts are ``source`` again."""
    collector = _Collector(source)
    collector.feed(source)
    collector.close()
    found = collector.found
    tokens: list[Token] = []
    starts = [at for at, _ in found]
    if not found or starts[0] > 0:
        first = starts[0] if found else len(source)
        if first:
            tokens.append(Token("text", source[:first]))
    for i, (at, token) in enumerate(found):
        end = starts[i + 1] if i + 1 < len(found) else len(source)
        if end <= at:  # two reports at one position (a flushed empty text): keep the later
            continue
        token.raw = source[at:end]
        tokens.append(token)
    # adjacent text reports (html.parser may split one text node) become one text token
    merged: list[Token] = []
    for token in tokens:
        if token.kind == "text" and merged and merged[-1].kind == "text":
            merged[-1].raw += token.raw
        else:
            merged.append(token)
    return merged


__all__ = ["Token", "tokenize"]
