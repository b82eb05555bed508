"""Worker-side argument shaping for R2: option dicts, ``onlyIf``, ``range``, metadata, bodies.

Pure functions, shared by the Worker's binding and the host-side test handle, so both accept
the same spellings (Cloudflare's camelCase and snake_case) and refuse the same mistakes with a
TypeError that names the option and what is accepted.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from edgelet.bindings.r2.storage import CHUNK, HASHES


def camel(name: str) -> str:
    """``http_metadata`` -> ``httpMetadata`` (names without ``_`` are unchanged)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def options(where: str, positional: Any, kwargs: dict[str, Any], accepted: tuple[str, ...]) -> dict[str, Any]:
    """Merge an options dict and keyword arguments into Cloudflare's names.

    Each accepted camelCase name also answers to its snake_case spelling; anything else is a
    TypeError listing what is accepted, so a typo never goes unseen."""
    merged: dict[str, Any] = {}
    sources: list[Mapping[str, Any]] = []
    if positional is not None:
        if not isinstance(positional, Mapping):
            raise TypeError(f"{where}: options must be a dict, got {type(positional).__name__}")
        sources.append(positional)
    sources.append(kwargs)
    for source in sources:
        for name, value in source.items():
            canonical = camel(str(name))
            if canonical not in accepted:
                raise TypeError(f"{where}: unknown option {name!r}; accepted: {', '.join(accepted)}")
            if value is not None:
                merged[canonical] = value
    return merged


def is_headers(value: Any) -> bool:
    """A Headers object (workers.Headers or alike): has get() but is not a plain dict."""
    return not isinstance(value, Mapping) and callable(getattr(value, "get", None))


def _header_getter(value: Any) -> Any:
    if isinstance(value, Mapping):
        lowered = {str(k).lower(): v for k, v in value.items()}
        return lambda name: lowered.get(name)
    return lambda name: value.get(name)


def to_ms(value: Any, where: str, what: str) -> int:
    """Milliseconds since the epoch from a datetime, a number (ms, as JavaScript's Date) or a
    date string (ISO 8601 or an HTTP date)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return to_ms(_dt.datetime.fromisoformat(value.replace("Z", "+00:00")), where, what)
        except ValueError:
            pass
        try:
            return to_ms(email.utils.parsedate_to_datetime(value), where, what)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{where}: {what} must be a datetime, milliseconds since the epoch, or a date string; "
                    f"got {value!r}")


def from_ms(ms: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)


def _etags(value: Any, where: str, what: str, *, header: bool) -> list[list[str]]:
    if isinstance(value, str):
        items = [v for v in (p.strip() for p in value.split(",")) if v] if header else [value.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise TypeError(f"{where}: onlyIf.{what} must be an etag string or a list of them, got {value!r}")
    out = []
    for item in items:
        if not header and len(item) >= 2 and item.startswith('"') and item.endswith('"'):
            # workerd refuses it: an onlyIf dict takes the bare etag (obj.etag), a Headers the quoted one
            raise TypeError(f"{where}: Conditional ETag should not be wrapped in quotes ({item}). onlyIf.{what} "
                            f"takes the bare etag, obj.etag, not obj.httpEtag (a Headers with If-Match takes "
                            f"the quoted form)")
        if item == "*":
            out.append(["wildcard", ""])
        elif item.startswith("W/"):
            out.append(["weak", item[2:].strip('"')])
        else:
            out.append(["strong", item.strip('"')])
    return out


_ONLY_IF = ("etagMatches", "etagDoesNotMatch", "uploadedBefore", "uploadedAfter")
_CONDITION_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def only_if(value: Any, where: str) -> dict[str, Any] | None:
    """The wire form of ``onlyIf``: a dict of R2Conditional fields or Headers with If-*."""
    if value is None:
        return None
    headers = is_headers(value) or (isinstance(value, Mapping) and any(
        str(k).lower() in _CONDITION_HEADERS for k in value))
    out: dict[str, Any] = {}
    if headers:
        get = _header_getter(value)
        for header, field, kind in (("if-match", "etagMatches", "etag"), ("if-none-match", "etagDoesNotMatch", "etag"),
                                    ("if-unmodified-since", "uploadedBefore", "date"),
                                    ("if-modified-since", "uploadedAfter", "date")):
            raw = get(header)
            if raw is None:
                continue
            out[field] = _etags(raw, where, header, header=True) if kind == "etag" else to_ms(raw, where, header)
        out["secondsGranularity"] = True
        return out
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: onlyIf must be a dict of {', '.join(_ONLY_IF)} or a Headers object with "
                        f"If-Match/If-None-Match/If-Modified-Since/If-Unmodified-Since; got {type(value).__name__}")
    for name, raw in value.items():
        field = camel(str(name))
        if field not in _ONLY_IF:
            raise TypeError(f"{where}: unknown onlyIf field {name!r}; accepted: {', '.join(_ONLY_IF)}")
        if raw is None:
            continue
        if field.startswith("etag"):
            out[field] = _etags(raw, where, field, header=False)
        else:
            out[field] = to_ms(raw, where, f"onlyIf.{field}")
    return out


def range_spec(value: Any, where: str) -> dict[str, Any] | None:
    """The wire form of ``range``: ``{offset, length}``/``{suffix}``, or a Range header."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"header": value}
    if is_headers(value):
        raw = value.get("range")
        return None if raw is None else {"header": str(raw)}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: range must be a dict {{offset, length}} or {{suffix}}, a Headers object with "
                        f"Range, or a 'bytes=...' string; got {type(value).__name__}")
    out: dict[str, Any] = {}
    for name, raw in value.items():
        if str(name).lower() == "range" and isinstance(raw, str):
            return {"header": raw}
        field = camel(str(name))
        if field not in ("offset", "length", "suffix"):
            raise TypeError(f"{where}: unknown range field {name!r}; accepted: offset, length, suffix")
        if raw is None:
            continue
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise TypeError(f"{where}: range.{field} must be a whole number >= 0, got {raw!r}")
        out[field] = raw
    if "suffix" in out and ("offset" in out or "length" in out):
        raise TypeError(f"{where}: range takes either suffix or offset/length, not both")
    return out


_HTTP_FIELDS = {"contentType": "content-type", "contentLanguage": "content-language",
                "contentDisposition": "content-disposition", "contentEncoding": "content-encoding",
                "cacheControl": "cache-control", "cacheExpiry": "expires"}


def http_metadata(value: Any, where: str) -> dict[str, Any]:
    """The wire form of ``httpMetadata`` (a dict, or Headers to copy the fields from)."""
    if value is None:
        return {}
    out: dict[str, Any] = {}
    if is_headers(value):
        for field, header in _HTTP_FIELDS.items():
            raw = value.get(header)
            if raw is not None:
                out[field] = to_ms(raw, where, "expires") if field == "cacheExpiry" else str(raw)
        return out
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: httpMetadata must be a dict or a Headers object, got {type(value).__name__}")
    for name, raw in value.items():
        field = camel(str(name))
        if field not in _HTTP_FIELDS:
            raise TypeError(f"{where}: unknown httpMetadata field {name!r}; accepted: {', '.join(_HTTP_FIELDS)}")
        if raw is None:
            continue
        if field == "cacheExpiry":
            out[field] = to_ms(raw, where, "httpMetadata.cacheExpiry")
        elif isinstance(raw, str):
            out[field] = raw
        else:
            raise TypeError(f"{where}: httpMetadata.{field} must be a str, got {type(raw).__name__}")
    return out


def custom_metadata(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: customMetadata must be a dict of str to str, got {type(value).__name__}")
    out = {}
    for name, raw in value.items():
        if isinstance(raw, (dict, list, tuple, set, bytes)) or raw is None:
            raise TypeError(f"{where}: customMetadata[{name!r}] must be a str, got {type(raw).__name__}; "
                            f"store structured data as json.dumps(value)")
        out[str(name)] = str(raw).lower() if isinstance(raw, bool) else str(raw)
    return out


_DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def checksums(opts: dict[str, Any], where: str) -> dict[str, str]:
    """The hash a put asked to verify, as lowercase hex: at most one, as workerd allows."""
    out: dict[str, str] = {}
    for name in HASHES:
        raw = opts.get(name)
        if raw is None:
            continue
        if out:
            raise TypeError(f"{where}: You cannot specify multiple hashing algorithms. Got {next(iter(out))} and "
                            f"{name}; pass one of md5, sha1, sha256, sha384, sha512 (the object's md5 is kept "
                            f"whichever you pass)")
        if isinstance(raw, str):
            try:
                digest = bytes.fromhex(raw)
            except ValueError:
                raise TypeError(f"{where}: {name} must be hex or bytes, got {raw[:80]!r}") from None
        elif isinstance(raw, (bytes, bytearray, memoryview)):
            digest = bytes(raw)
        elif callable(getattr(raw, "to_bytes", None)):
            digest = bytes(raw.to_bytes())
        else:
            raise TypeError(f"{where}: {name} must be hex or bytes, got {type(raw).__name__}")
        if len(digest) != _DIGEST_BYTES[name]:
            raise TypeError(f"{where}: {name} must be {_DIGEST_BYTES[name]} bytes "
                            f"({_DIGEST_BYTES[name] * 2} hex digits), got {len(digest)}")
        out[name] = digest.hex()
    return out


async def body_chunks(value: Any, where: str) -> AsyncIterator[bytes]:
    """A put's value as chunks of at most CHUNK bytes: str, bytes, None, or a stream."""
    if value is None:
        return
    if isinstance(value, str):
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(f"{where}: the value is not valid Unicode (a lone surrogate); pass bytes") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        view = memoryview(value).cast("B")
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start:start + CHUNK])
        return
    if hasattr(value, "__aiter__"):
        async for chunk in value:
            for piece in _split(_chunk(chunk, where)):
                yield piece
        return
    reader_fn = getattr(value, "getReader", None) or getattr(value, "get_reader", None)
    if callable(reader_fn):
        reader = reader_fn()
        while True:
            step = await reader.read()
            done = step.get("done") if isinstance(step, Mapping) else getattr(step, "done", True)
            if done:
                return
            for piece in _split(_chunk(step["value"] if isinstance(step, Mapping) else step.value, where)):
                yield piece
    if callable(getattr(value, "to_bytes", None)) and not isinstance(value, int):
        async for chunk in body_chunks(bytes(value.to_bytes()), where):
            yield chunk
        return
    if callable(getattr(value, "read", None)):
        while True:
            data = value.read(CHUNK)
            if hasattr(data, "__await__"):
                data = await data
            if not data:
                return
            yield _chunk(data, where)
    if hasattr(value, "__iter__") and not isinstance(value, (Mapping, int, float)):
        for chunk in value:
            for piece in _split(_chunk(chunk, where)):
                yield piece
        return
    hint = " (to store JSON, pass json.dumps(value))" if isinstance(value, (dict, list, int, float)) else ""
    raise TypeError(f"{where}: the value is a {type(value).__name__}; pass str, bytes, None or a stream{hint}")


def _split(data: bytes) -> Iterator[bytes]:
    """A stream's chunk cut to CHUNK-sized pieces, so no message grows past a chunk."""
    if len(data) <= CHUNK:
        yield data
        return
    view = memoryview(data)
    for i in range(0, len(view), CHUNK):
        yield bytes(view[i:i + CHUNK])


def _chunk(chunk: Any, where: str) -> bytes:
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if callable(getattr(chunk, "to_bytes", None)):
        return bytes(chunk.to_bytes())
    raise TypeError(f"{where}: a stream yielded a {type(chunk).__name__}; streams must yield bytes or str")


def json_loads(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{where}: the body is not valid JSON ({exc}); read it with text()") from None
