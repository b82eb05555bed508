"""Cloudflare's KV limits and the checks that enforce them, shared by every entry point.

Why one module: the Worker binding, the host-side test handle, the control API and the CLI
all write through the same rules, so a value the platform would refuse from a Worker is
refused from ``curl`` too, with the same words. Pure functions, no I/O, importable inside
an isolate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_EXPIRATION_TTL = 60
#: the largest ``expiration`` / ``expirationTtl``: Cloudflare's put options hold both as a
#: 32-bit integer (workerd's KvNamespace::PutOptions; larger is "Value out of range")
MAX_EXPIRATION = 2**31 - 1
MIN_CACHE_TTL = 30
MAX_LIST_LIMIT = 1000
MAX_BULK_KEYS = 100

#: ``type`` values a single-key ``get`` accepts; bulk gets take only text and json
GET_TYPES = ("text", "json", "bytes", "arrayBuffer", "stream")
BULK_TYPES = ("text", "json")
_TYPE_ALIASES = {"array_buffer": "arrayBuffer", "arraybuffer": "arrayBuffer"}


def show_key(key: str, limit: int = 80) -> str:
    """A key for a message: quoted, cut short when long so the message stays readable."""
    if len(key) <= limit:
        return repr(key)
    return repr(key[:limit]) + f"... ({len(key.encode('utf-8', 'surrogatepass'))} bytes)"


def check_key(key: Any, where: str) -> bytes:
    """The key's UTF-8 bytes, or a TypeError/ValueError naming the key and the rule."""
    if not isinstance(key, str):
        raise TypeError(f"{where}: key must be a str, got {type(key).__name__} {key!r:.80}; "
                        f"pass the key as a string")
    if key == "":
        raise ValueError(f"{where}: key must not be empty; use a non-empty string of at most "
                         f"{MAX_KEY_BYTES} bytes")
    if key in (".", ".."):
        raise ValueError(f"{where}: key {key!r} is not allowed ('.' and '..' are reserved); "
                         f"choose another key name")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: key {show_key(key)} is not valid Unicode (it holds a lone "
                         f"surrogate); use a proper string") from None
    if len(raw) > MAX_KEY_BYTES:
        raise ValueError(f"{where}: key {show_key(key)} is {len(raw)} bytes in UTF-8, over the "
                         f"limit of {MAX_KEY_BYTES} bytes; use a shorter key")
    return raw


def check_value_size(size: int, key: str, where: str) -> None:
    if size > MAX_VALUE_BYTES:
        raise ValueError(f"{where}: value for key {show_key(key)} is {size} bytes, over the limit "
                         f"of {MAX_VALUE_BYTES} bytes (25 MiB); split it across several keys")


def check_metadata(metadata_json: str | None, key: str, where: str) -> None:
    if metadata_json is None:
        return
    if not isinstance(metadata_json, str):
        raise TypeError(f"{where}: metadata for key {show_key(key)} must arrive as JSON text")
    try:
        size = len(metadata_json.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{where}: metadata for key {show_key(key)} is not valid Unicode (a str in "
                         f"it holds a lone surrogate); use proper strings") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"{where}: metadata for key {show_key(key)} is {size} bytes as JSON, "
                         f"over the limit of {MAX_METADATA_BYTES} bytes; keep metadata small "
                         f"and put the rest in the value")


def _number(value: Any, name: str, key: str, where: str) -> float:
    """A finite number of seconds (NaN and infinity, as numbers or text, are refused)."""
    number: float | None = None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    if number is None:
        raise TypeError(f"{where}: {name} for key {show_key(key)} must be a number of seconds, "
                        f"got {value!r:.80}")
    if not math.isfinite(number):
        raise ValueError(f"{where}: {name} for key {show_key(key)} is {value!r:.40}; pass a finite "
                         f"number of seconds")
    return number


def resolve_expiration(expiration: Any, expiration_ttl: Any, now: float, key: str,
                       where: str) -> int | None:
    """Absolute expiry in epoch seconds (or None), checked as Cloudflare checks it.

    ``expirationTtl`` wins when both are given, as in Cloudflare.
    """
    if expiration_ttl is not None:
        return int(now) + check_ttl(expiration_ttl, key, where)
    if expiration is not None:
        when = check_expiration_max(expiration, key, where)
        if when < now + MIN_EXPIRATION_TTL:
            raise ValueError(f"{where}: expiration {expiration!r} for key {show_key(key)} is not "
                             f"at least {MIN_EXPIRATION_TTL} seconds in the future (now is "
                             f"{int(now)}); pass epoch seconds >= now + {MIN_EXPIRATION_TTL}, "
                             f"or use expirationTtl")
        return when
    return None


def check_ttl(expiration_ttl: Any, key: str, where: str) -> int:
    """``expirationTtl`` as whole seconds, within Cloudflare's bounds (no clock needed)."""
    ttl = _number(expiration_ttl, "expirationTtl", key, where)
    if ttl < MIN_EXPIRATION_TTL:
        raise ValueError(f"{where}: expirationTtl {expiration_ttl!r} for key {show_key(key)} "
                         f"is under the minimum of {MIN_EXPIRATION_TTL} seconds; use "
                         f"expirationTtl >= {MIN_EXPIRATION_TTL}")
    if ttl > MAX_EXPIRATION:
        raise ValueError(f"{where}: expirationTtl {expiration_ttl!r:.40} for key {show_key(key)} is "
                         f"out of range; use {MIN_EXPIRATION_TTL} to {MAX_EXPIRATION} seconds "
                         f"(a 32-bit integer, as Cloudflare takes it)")
    return int(ttl)


def check_expiration_max(expiration: Any, key: str, where: str) -> int:
    """``expiration`` as whole epoch seconds, at most :data:`MAX_EXPIRATION`; the lower
    bound (now + 60) needs the platform's clock and is checked by :func:`resolve_expiration`."""
    when = int(_number(expiration, "expiration", key, where))
    if when > MAX_EXPIRATION:
        raise ValueError(f"{where}: expiration {expiration!r:.40} for key {show_key(key)} is out of "
                         f"range; use epoch seconds from now + {MIN_EXPIRATION_TTL} to "
                         f"{MAX_EXPIRATION} (2038-01-19, a 32-bit integer, as Cloudflare takes it), "
                         f"or expirationTtl")
    return when


def check_limit(limit: Any, where: str) -> int:
    if limit is None:
        return MAX_LIST_LIMIT
    if isinstance(limit, str) and limit.strip().isdecimal() and len(limit.strip()) <= 10:
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or \
            (isinstance(limit, float) and not limit.is_integer()):
        raise TypeError(f"{where}: limit must be a whole number from 1 to {MAX_LIST_LIMIT}, "
                        f"got {limit!r:.80}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"{where}: limit {limit} is out of range; use 1 to {MAX_LIST_LIMIT} "
                         f"(default {MAX_LIST_LIMIT}) and follow the cursor for more")
    return int(limit)


def check_prefix(prefix: Any, where: str) -> bytes:
    if prefix is None:
        return b""
    if not isinstance(prefix, str):
        raise TypeError(f"{where}: prefix must be a str, got {type(prefix).__name__}")
    try:
        raw = prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: prefix {show_key(prefix)} is not valid Unicode (it holds a lone "
                         f"surrogate), so no key can match; use a proper string") from None
    if len(raw) > MAX_KEY_BYTES:
        raise ValueError(f"{where}: prefix is {len(raw)} bytes in UTF-8, over the key limit of "
                         f"{MAX_KEY_BYTES} bytes, so no key can match; use a shorter prefix")
    return raw


def check_type(value: Any, where: str, key: str | list[str] | None, *, bulk: bool = False) -> str:
    """The canonical ``type`` option, or a ValueError listing the accepted ones."""
    if value is None:
        return "text"
    if not isinstance(value, str):
        raise TypeError(f"{where}: type must be a str such as 'text' or 'json', got "
                        f"{type(value).__name__}")
    canonical = _TYPE_ALIASES.get(value, value)
    allowed = BULK_TYPES if bulk else GET_TYPES
    if canonical not in allowed:
        what = f"{len(key)} keys" if bulk and isinstance(key, list) else \
            (f"key {show_key(key)}" if isinstance(key, str) else "the keys")
        extra = " (a bulk get of several keys returns only text or json)" if bulk else ""
        raise ValueError(f"{where}: type {value!r} for {what} is not one of "
                         f"{', '.join(repr(t) for t in allowed)}{extra}")
    return canonical


def check_cache_ttl(value: Any, where: str) -> None:
    """Accepted for compatibility and ignored: there is one "edge location", this machine."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: cacheTtl must be a number of seconds, got {value!r:.80}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: cacheTtl {value!r} is not a finite number of seconds; use "
                         f"cacheTtl >= {MIN_CACHE_TTL} or leave it out")
    if value < MIN_CACHE_TTL:
        raise ValueError(f"{where}: cacheTtl {value!r} is under the minimum of {MIN_CACHE_TTL} "
                         f"seconds; use cacheTtl >= {MIN_CACHE_TTL} or leave it out")


def check_bulk(keys: list[Any], where: str) -> None:
    if not keys:
        raise ValueError(f"{where}: a bulk get needs at least 1 key, got an empty list")
    if len(keys) > MAX_BULK_KEYS:
        raise ValueError(f"{where}: {len(keys)} keys requested in one bulk get; the limit is "
                         f"{MAX_BULK_KEYS} keys per call, so split the list")


# -- list cursors --------------------------------------------------------------------------

#: bytes of the check that starts every cursor: a string list() never returned (a typo,
#: ``garbage``, a cursor cut short) fails it and is a clear error, not an empty page
_CURSOR_CHECK = 4


def _cursor_check(last_key: bytes) -> bytes:
    return hashlib.blake2b(last_key, digest_size=_CURSOR_CHECK, person=b"edgelet-kv-cur").digest()


def encode_cursor(last_key: bytes) -> str:
    """Opaque to callers; it is the last key returned (after a short check), so paging
    survives writes in between."""
    data = _cursor_check(last_key) + last_key
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_cursor(cursor: Any, where: str) -> bytes | None:
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise TypeError(f"{where}: cursor must be the str a previous list() returned, got "
                        f"{type(cursor).__name__}")
    try:
        data = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        data = b""
    check, last_key = data[:_CURSOR_CHECK], data[_CURSOR_CHECK:]
    if len(check) < _CURSOR_CHECK or check != _cursor_check(last_key):
        raise ValueError(f"{where}: cursor {cursor!r:.80} is not one list() returned; pass the "
                         f"cursor of the previous page unchanged, or none to start over")
    return last_key


def key_entry(name: str, expiration: int | None, metadata: str | None,
              *, factory: Callable[..., dict[str, Any]] = dict) -> dict[str, Any]:
    """One key of a list result, as Cloudflare shapes it: ``expiration`` and ``metadata``
    only when set. Shared by the Worker binding, the control API and the CLI."""
    item = factory(name=name)
    if expiration is not None:
        item["expiration"] = expiration
    if metadata is not None:
        item["metadata"] = json.loads(metadata)
    return item
