"""JSON with comments and trailing commas (wrangler.jsonc), read in linear time.

Why not json5 for everything: its parser is pure Python and recursive, 12 s for a 2.2 MB
wrangler.json, and a RecursionError for values nested 70 deep. Plain JSON and JSONC are
almost all config files: one regular-expression pass blanks out comments and trailing
commas (keeping every other character where it was, so error lines and columns stay
true), then the C ``json`` module reads the text. json5 is left for real JSON5 syntax
(unquoted keys, single quotes, hex numbers), tried only when that fails.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsoncError", "loads", "strip_jsonc"]

#: JSON5 is tried only for files up to this size: its parser is too slow beyond
JSON5_MAX_BYTES = 4 * 1024 * 1024

_BLOCK = r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/"
_TOKENS = re.compile(
    r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'  # a string, kept as it is
    r"|//[^\n]*"  # a line comment
    rf"|{_BLOCK}"  # a block comment
    # a trailing comma: only blanks and comments before the bracket. The comment is matched
    # possessively: given back, a "]" inside it would pass for the bracket.
    rf"|,(?=(?:[ \t\r\n]|//[^\n]*+|{_BLOCK})*+[\]}}])"
)


class JsoncError(ValueError):
    """Invalid JSONC; ``line`` and ``column`` (1-based) point at the problem."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _blank(match: re.Match[str]) -> str:
    text = match.group(0)
    if text[0] == '"':
        return text
    if text[0] == ",":
        return " "
    # a comment: spaces, but its line breaks stay so that later lines keep their numbers
    return re.sub(r"[^\n]", " ", text) if "\n" in text else " " * len(text)


def strip_jsonc(text: str) -> str:
    """``text`` with comments and trailing commas replaced by spaces (same length)."""
    if "/" not in text and "," not in text:
        return text
    return _TOKENS.sub(_blank, text)


def loads(text: str) -> Any:
    """Parse JSON, JSONC or (as a fallback) JSON5; JsoncError says where it is wrong.

    Values nested too deeply for the parser raise JsoncError too (never RecursionError).
    """
    try:
        return json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        first = JsoncError(exc.msg, exc.lineno, exc.colno)
    except RecursionError:
        raise JsoncError("values are nested too deeply to read", None, None) from None
    if len(text) > JSON5_MAX_BYTES:
        raise first
    try:
        import json5  # lazily: only files with JSON5 syntax need it

        return json5.loads(text)
    except RecursionError:
        raise JsoncError("values are nested too deeply to read", None, None) from None
    except Exception:
        # not JSON5 either: the JSON parser's message is the more precise one
        raise first from None
