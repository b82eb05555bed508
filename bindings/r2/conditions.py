"""``onlyIf`` and ``range`` on the host: pure functions over the wire forms of binding.py.

Semantics follow Cloudflare's R2 gateway as Miniflare documents it (RFC 7232 section 6):
``etagMatches`` compares strongly, ``etagDoesNotMatch`` weakly; ``uploadedAfter`` is waived
when ``etagDoesNotMatch`` passed, ``uploadedBefore`` when ``etagMatches`` passed; conditions
that came from HTTP headers compare at whole seconds.
"""

from __future__ import annotations

import re
from typing import Any

from edgelet.bindings.r2 import errors

#: [type, value] with type "strong", "weak" or "wildcard"
Etag = list[str]


def _includes(conditions: list[Etag], etag: str, *, weak: bool) -> bool:
    for kind, value in conditions:
        if kind == "wildcard":
            return True
        if value == etag and (kind == "strong" or weak):
            return True
    return False


def passes(only_if: dict[str, Any] | None, etag: str | None, uploaded_ms: int | None) -> bool:
    """Whether ``only_if`` holds for the current object (``etag`` None: no object)."""
    if not only_if:
        return True
    matches = only_if.get("etagMatches")
    not_matches = only_if.get("etagDoesNotMatch")
    after = only_if.get("uploadedAfter")
    before = only_if.get("uploadedBefore")
    if etag is None or uploaded_ms is None:
        return matches is None and after is None

    def cut(ms: int) -> int:
        return ms // 1000 * 1000 if only_if.get("secondsGranularity") else ms

    if_match = matches is None or _includes(matches, etag, weak=False)
    if_none_match = not_matches is None or not _includes(not_matches, etag, weak=True)
    last = cut(uploaded_ms)
    if_modified = after is None or cut(after) < last or (not_matches is not None and if_none_match)
    if_unmodified = before is None or last < cut(before) or (matches is not None and if_match)
    return if_match and if_none_match and if_modified and if_unmodified


_RANGE_HEADER = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def resolve_range(spec: dict[str, Any] | None, size: int, key: str, where: str) -> tuple[int, int] | None:
    """``(offset, length)`` of a get, None for the whole object.

    A ``{offset, length}`` / ``{suffix}`` range that starts past the end (or is empty) is an
    error, as on Cloudflare; a length reaching past the end is cut at the end. A ``Range``
    header that cannot be satisfied, or names several ranges, gives the whole object (HTTP's rule).
    """
    if not spec:
        return None
    header = spec.get("header")
    if header is not None:
        m = _RANGE_HEADER.match(header)
        if m is None:
            return None
        first, last = m.group(1), m.group(2)
        if first == "" and last == "":
            return None
        if first == "":
            n = min(int(last), size)
            return (size - n, n) if n > 0 else None
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
        if start >= size or end < start:
            return None
        return start, end - start + 1
    offset, length, suffix = spec.get("offset"), spec.get("length"), spec.get("suffix")
    show = errors.show_key(key)
    if size == 0:
        raise errors.R2Error(where, errors.INVALID_RANGE,
                             f"object {show} is empty (0 bytes), so no range of it can be read; get it "
                             f"without a range")
    if suffix is not None:
        if suffix <= 0:
            raise errors.R2Error(where, errors.INVALID_RANGE,
                                 f"range.suffix is {suffix}; give a positive number of bytes to read "
                                 f"from the end of {show}")
        suffix = min(suffix, size)
        return size - suffix, suffix
    start = 0 if offset is None else offset
    if length is not None and length <= 0:
        raise errors.R2Error(where, errors.INVALID_RANGE,
                             f"range.length is {length}; give a positive number of bytes to read from "
                             f"{show} ({size} bytes), or leave length out to read to the end")
    if start >= size:
        asked = f"range.offset {start}" + ("" if length is None else f" (length {length})")
        raise errors.R2Error(where, errors.INVALID_RANGE,
                             f"{asked} starts at or past the end of {show}, which is {size} bytes; "
                             f"give an offset below {size}")
    return start, size - start if length is None else min(length, size - start)
