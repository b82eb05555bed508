"""JavaScript globals a Python Worker reaches through ``js`` beyond the Fetch API.

On Cloudflare ``import js`` is the Worker's global scope, so scripts ported from JavaScript
(or calling ``crypto.subtle`` with bytes from ``js.TextEncoder``) use these. Here they are
small Python stand-ins with the JS names and results: ``TextEncoder.new().encode(s)`` gives
a ``Uint8Array``, timers run on the Worker's event loop, ``navigator.userAgent`` is
workerd's ``"Cloudflare-Workers"``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import random
import re
import time
import urllib.parse
from typing import Any

from edgelet.runtime.jstypes import Uint8Array

#: what encodeURIComponent leaves alone (ECMAScript: A-Z a-z 0-9 - _ . ! ~ * ' ( ))
_COMPONENT_SAFE = "-_.!~*'()"
#: encodeURI also leaves the URI's own separators: ; , / ? : @ & = + $ #
_URI_SAFE = _COMPONENT_SAFE + ";,/?:@&=+$#"
#: escapes decodeURI leaves alone: those of # $ & + , / : ; = ? @
_RESERVED_ESCAPE = re.compile(r"(%(?:2[346BCFbcf]|3[ABDFabdf]|40))")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _as_text(value: Any) -> str:
    """JS turns any value into a string before encoding it (``String(value)``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encodeURIComponent(value: Any) -> str:  # noqa: N802 - JavaScript's name
    try:
        return urllib.parse.quote(_as_text(value), safe=_COMPONENT_SAFE, errors="strict")
    except UnicodeEncodeError:  # a lone surrogate: JS throws URIError
        raise ValueError(f"URIError: URI malformed: {value!r} holds a lone surrogate") from None


def encodeURI(value: Any) -> str:  # noqa: N802
    try:
        return urllib.parse.quote(_as_text(value), safe=_URI_SAFE, errors="strict")
    except UnicodeEncodeError:
        raise ValueError(f"URIError: URI malformed: {value!r} holds a lone surrogate") from None


def decodeURIComponent(value: Any) -> str:  # noqa: N802
    try:
        return urllib.parse.unquote(_as_text(value), errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"URIError: URI malformed: {value!r} is not percent-encoded UTF-8") from None


def decodeURI(value: Any) -> str:  # noqa: N802
    """Like decodeURIComponent, but escapes of the URI's separators (``%2F``, ``%3F``, ...)
    stay escaped, as in JS."""
    parts = _RESERVED_ESCAPE.split(_as_text(value))
    # split keeps the separators' escapes at odd positions: decode only the text between them
    return "".join(part if i % 2 else decodeURIComponent(part) for i, part in enumerate(parts))


class TextEncoder:
    """``TextEncoder.new().encode("text")`` -> ``Uint8Array`` of UTF-8."""

    encoding = "utf-8"

    @classmethod
    def new(cls) -> TextEncoder:
        return cls()

    def encode(self, text: Any = "") -> Uint8Array:
        """A lone surrogate becomes U+FFFD, as in JS (Python would refuse to encode it)."""
        return Uint8Array(_SURROGATE.sub("\ufffd", _as_text(text)).encode("utf-8"))


class TextDecoder:
    """``TextDecoder.new().decode(buffer)``; ``fatal=True`` raises on bad bytes, as in JS
    (``TypeError``), else they become U+FFFD."""

    def __init__(self, label: str = "utf-8", options: Any = None, **kwargs: Any) -> None:
        options = {**(options or {}), **kwargs}
        self.encoding = "utf-8" if label.lower() in ("utf-8", "utf8", "unicode-1-1-utf-8") else label.lower()
        self.fatal = bool(options.get("fatal", False))
        self.ignoreBOM = bool(options.get("ignoreBOM", False))  # noqa: N815

    @classmethod
    def new(cls, label: str = "utf-8", options: Any = None, **kwargs: Any) -> TextDecoder:
        return cls(label, options, **kwargs)

    def decode(self, data: Any = b"", options: Any = None) -> str:
        raw = b"" if data is None else bytes(data.to_bytes() if hasattr(data, "to_bytes") else memoryview(data))
        if self.encoding == "utf-8" and not self.ignoreBOM and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode(self.encoding, errors="strict" if self.fatal else "replace")
        except UnicodeDecodeError as exc:
            raise TypeError(f"TextDecoder.decode: the data is not valid {self.encoding}: {exc.reason} at "
                            f"byte {exc.start}") from None
        except LookupError:
            raise ValueError(f"TextDecoder: unknown encoding {self.encoding!r}") from None


class Math:
    """The parts of JS ``Math`` scripts use (``Math.random()``, ``Math.floor(x)``)."""

    PI = math.pi
    E = math.e

    @staticmethod
    def random() -> float:
        return random.random()

    @staticmethod
    def floor(x: float) -> int:
        return math.floor(x)

    @staticmethod
    def ceil(x: float) -> int:
        return math.ceil(x)

    @staticmethod
    def round(x: float) -> int:
        """JS rounds halves up (``Math.round(-2.5) == -2``), unlike Python's ``round``."""
        return math.floor(x + 0.5)

    @staticmethod
    def trunc(x: float) -> int:
        return math.trunc(x)

    @staticmethod
    def abs(x: float) -> float:
        return abs(x)

    @staticmethod
    def sqrt(x: float) -> float:
        return math.sqrt(x) if x >= 0 else math.nan

    @staticmethod
    def pow(x: float, y: float) -> float:
        return math.pow(x, y)

    @staticmethod
    def max(*values: float) -> float:
        return max(values) if values else -math.inf

    @staticmethod
    def min(*values: float) -> float:
        return min(values) if values else math.inf


class performance:  # noqa: N801 - JavaScript's name
    """``performance.now()``: milliseconds since the isolate started (on Cloudflare the
    clock only moves on I/O, a Spectre mitigation; here it is the real monotonic clock)."""

    _origin = time.monotonic()
    timeOrigin = time.time() * 1000  # noqa: N815

    @staticmethod
    def now() -> float:
        return (time.monotonic() - performance._origin) * 1000


class navigator:  # noqa: N801
    userAgent = "Cloudflare-Workers"  # noqa: N815 - what workerd reports
    hardwareConcurrency = 1  # noqa: N815 - workerd reports 1


def structuredClone(value: Any, options: Any = None) -> Any:  # noqa: N802
    """A deep copy (``structuredClone`` refuses functions: so does this, with its name)."""
    if callable(value) and not isinstance(value, type):
        raise TypeError(f"structuredClone: {value!r} could not be cloned (functions cannot be)")
    return copy.deepcopy(value)


_timer_ids = itertools.count(1)
_timers: dict[int, asyncio.TimerHandle] = {}


def _call(callback: Any, args: tuple[Any, ...]) -> None:
    result = callback(*args)
    if asyncio.iscoroutine(result):  # an async callback runs as its own task
        asyncio.ensure_future(result)


def setTimeout(callback: Any, delay: float = 0, *args: Any) -> int:  # noqa: N802
    """Run ``callback(*args)`` after ``delay`` ms on the Worker's event loop; returns the id
    ``clearTimeout`` takes. (A callback wrapped in ``create_once_callable`` works as is.)"""
    timer_id = next(_timer_ids)

    def fire() -> None:
        _timers.pop(timer_id, None)
        _call(callback, args)

    _timers[timer_id] = asyncio.get_running_loop().call_later(max(float(delay or 0), 0) / 1000, fire)
    return timer_id


def setInterval(callback: Any, delay: float = 0, *args: Any) -> int:  # noqa: N802
    timer_id = next(_timer_ids)
    loop = asyncio.get_running_loop()
    seconds = max(float(delay or 0), 0) / 1000

    def fire() -> None:
        _timers[timer_id] = loop.call_later(seconds, fire)
        _call(callback, args)

    _timers[timer_id] = loop.call_later(seconds, fire)
    return timer_id


def clearTimeout(timer_id: Any = None) -> None:  # noqa: N802
    handle = _timers.pop(timer_id, None) if isinstance(timer_id, int) else None
    if handle is not None:
        handle.cancel()


clearInterval = clearTimeout  # noqa: N816


def queueMicrotask(callback: Any) -> None:  # noqa: N802
    asyncio.get_running_loop().call_soon(_call, callback, ())


__all__ = ["Math", "TextDecoder", "TextEncoder", "clearInterval", "clearTimeout", "decodeURI",
           "decodeURIComponent", "encodeURI", "encodeURIComponent", "navigator", "performance",
           "queueMicrotask", "setInterval", "setTimeout", "structuredClone"]
