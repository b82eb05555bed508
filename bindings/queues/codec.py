"""Message bodies and send options: the rules both the Worker and the host enforce.

Imported inside isolates (the producer serializes there, so a ``pickle`` body is pickled in
the Worker that sent it) and on the host (which re-checks everything an isolate sends and
encodes bodies for the control API and test handles). Nothing here unpickles: decoding
``pickle``/``v8`` bodies happens only in the consumer's isolate (see ``isolate.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json import encoder as _json_encoder
from json.encoder import encode_basestring
from typing import Any

#: CPython's C encoder as the json module found it (None where there is none)
c_make_encoder: Any = getattr(_json_encoder, "c_make_encoder", None)

#: Cloudflare's limits (decimal kilobytes, as Cloudflare and Miniflare count them).
MAX_MESSAGE_BYTES = 128_000
MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 256_000
MAX_DELAY_SECONDS = 43_200  # 12 hours

#: ``json`` is the default for Python values, as on Cloudflare. ``v8`` (structured clone in
#: JavaScript) has no Python meaning of its own; here it is the same as ``pickle``.
CONTENT_TYPES = ("json", "text", "bytes", "pickle", "v8")
OPAQUE_TYPES = ("pickle", "v8")
DEFAULT_CONTENT_TYPE = "json"

_OPTION_NAMES = {
    "contentType": "content_type", "content_type": "content_type",
    "delaySeconds": "delay_seconds", "delay_seconds": "delay_seconds",
}


class QueueLimitError(ValueError):
    """A message or batch over Cloudflare's limits; nothing was enqueued."""


def read_options(where: str, options: Any, kwargs: dict[str, Any],
                 allowed: Iterable[str] = ("content_type", "delay_seconds")) -> dict[str, Any]:
    """Merge an options dict and keyword arguments, Cloudflare or snake_case names.

    Why raise on unknown names (Cloudflare ignores them): a typo such as ``delay=5`` would
    otherwise silently send without the delay the author meant.
    """
    merged: dict[str, Any] = {}
    sources: list[dict[str, Any]] = []
    if options is not None:
        if not isinstance(options, dict):
            raise TypeError(f"{where}: options must be a dict such as "
                            f"{{'contentType': 'json', 'delaySeconds': 0}}, got {type(options).__name__}")
        sources.append(options)
    sources.append(kwargs)
    accepted = set(allowed)
    for source in sources:
        for key, value in source.items():
            name = _OPTION_NAMES.get(key)
            if name is None or name not in accepted:
                shown = ", ".join(sorted(k for k, v in _OPTION_NAMES.items() if v in accepted))
                raise TypeError(f"{where}: unknown option {key!r}; accepted: {shown}")
            if value is not None:
                merged[name] = value
    return merged


def check_content_type(value: Any, where: str) -> str:
    if value is None:
        return DEFAULT_CONTENT_TYPE
    if not isinstance(value, str) or value not in CONTENT_TYPES:
        raise ValueError(f"{where}: unknown contentType {value!r}; use one of "
                         f"{', '.join(repr(c) for c in CONTENT_TYPES)}")
    return value


def check_delay(value: Any, where: str, name: str = "delaySeconds") -> float | None:
    """A delay in seconds within 0..12 hours, or None when not given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: {name} must be a number of seconds, got {type(value).__name__}")
    if not 0 <= value <= MAX_DELAY_SECONDS:
        raise ValueError(f"{where}: {name} must be between 0 and {MAX_DELAY_SECONDS} "
                         f"(12 hours), got {value!r}")
    return float(value)


#: one encoder for every JSON body (``json.dumps`` with options builds one per call)
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: the C encoder ``_JSON.encode`` would build again for every body (2.5x the cost of the
#: encoding itself for a small body; a sendBatch of 100 encodes 100 of them)
_MARKERS: dict[int, Any] = {}
_C_JSON = (None if c_make_encoder is None else
           c_make_encoder(_MARKERS, _JSON.default, encode_basestring, None, ":", ",", False, False, False))


def dump_json(body: Any) -> bytes:
    """``body`` as compact JSON bytes, as ``_JSON.encode(body).encode()`` would give (same
    errors: TypeError for what JSON cannot hold, ValueError for NaN or a circular value)."""
    if _C_JSON is None:  # pragma: no cover - CPython always has the C encoder
        return _JSON.encode(body).encode()
    try:
        return "".join(_C_JSON(body, 0)).encode()
    except BaseException:
        _MARKERS.clear()  # an encoding cut short leaves its open containers marked
        raise


def encode_body(body: Any, content_type: str, where: str) -> bytes:
    """Serialize ``body`` as ``content_type``; raises TypeError naming a body that does not fit."""
    if body is None:
        raise TypeError(f"{where}: the message body is None; Cloudflare rejects an empty "
                        f"(undefined) body, so send a value such as {{}} or ''")
    if content_type == "json":
        try:
            return dump_json(body)
        except UnicodeEncodeError:
            raise _not_unicode(where, "a str in the body") from None
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: body of type {type(body).__name__!r} is not JSON-serializable "
                f"({exc}); convert it to dict/list/str/int/float/bool, or send it with "
                f"contentType='pickle'") from None
    if content_type == "text":
        if not isinstance(body, str):
            raise TypeError(f"{where}: contentType 'text' needs a str body, got "
                            f"{type(body).__name__}; use contentType='json' or 'bytes'")
        try:
            return body.encode()
        except UnicodeEncodeError:
            raise _not_unicode(where, "the text body") from None
    if content_type == "bytes":
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"{where}: contentType 'bytes' needs a bytes body, got "
                            f"{type(body).__name__}; use contentType='json' or 'text'")
        return bytes(body)
    # pickle / v8: only ever pickled here, unpickled in the consumer's isolate.
    import cloudpickle
    try:
        return cloudpickle.dumps(body)
    except Exception as exc:
        raise TypeError(f"{where}: body of type {type(body).__name__!r} cannot be pickled "
                        f"({type(exc).__name__}: {exc})") from None


def _not_unicode(where: str, what: str) -> ValueError:
    """A str holding a lone surrogate (from a bad decode, say) has no UTF-8 form to store."""
    return ValueError(f"{where}: {what} is not valid Unicode (it holds a lone surrogate such as "
                      f"'\\ud800'); fix the string, or send it with contentType='pickle' or as bytes")


def decode_body(content_type: str, data: bytes) -> Any:
    """The value of a json/text/bytes body. Never called for pickle/v8 on the host."""
    if content_type == "json":
        return json.loads(data)
    if content_type == "text":
        return data.decode()
    if content_type == "bytes":
        return bytes(data)
    raise ValueError(f"content type {content_type!r} is decoded only in the consumer's isolate")


def check_sizes(sizes: list[int], where: str) -> None:
    """Enforce the message, batch-count and batch-size limits before anything is stored."""
    if not sizes:
        raise TypeError(f"{where}: sendBatch() needs at least one message")
    if len(sizes) > MAX_BATCH_MESSAGES:
        raise QueueLimitError(f"{where}: a batch holds at most {MAX_BATCH_MESSAGES} messages, "
                              f"got {len(sizes)}; split it into several sendBatch() calls")
    for index, size in enumerate(sizes):
        if size > MAX_MESSAGE_BYTES:
            which = f"message {index} of the batch" if len(sizes) > 1 else "the message"
            raise QueueLimitError(f"{where}: {which} is {size} bytes serialized, over the limit "
                                  f"of {MAX_MESSAGE_BYTES} bytes (128 KB); store large payloads "
                                  f"elsewhere (KV) and send a reference")
    total = sum(sizes)
    if total > MAX_BATCH_BYTES:
        raise QueueLimitError(f"{where}: the batch is {total} bytes serialized, over the limit "
                              f"of {MAX_BATCH_BYTES} bytes (256 KB); send fewer messages per batch")


def prepare_batch(messages: Any, options: Any, kwargs: dict[str, Any],
                  where: str) -> tuple[list[list[Any]], float | None]:
    """Validate and serialize a ``sendBatch`` call into wire form.

    Returns ``([[content_type, body_bytes, delay_or_None], ...], batch_delay_or_None)``.
    """
    opts = read_options(where, options, kwargs, allowed=("delay_seconds",))
    batch_delay = check_delay(opts.get("delay_seconds"), where)
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, Iterable):
        raise TypeError(f"{where}: sendBatch() takes a list of messages like "
                        f"[{{'body': ...}}], got {type(messages).__name__}")
    wire: list[list[Any]] = []
    for index, item in enumerate(messages):
        if type(item) is dict and len(item) == 1 and "body" in item:  # noqa: E721 - the usual case, fast
            body = item["body"]
            if body is not None:
                try:
                    wire.append([DEFAULT_CONTENT_TYPE, dump_json(body), None])
                    continue
                except (TypeError, ValueError):
                    pass  # told below, with the message's place in the batch
        at = f"{where} message {index}"
        if not isinstance(item, dict) or "body" not in item:
            raise TypeError(f"{at}: each message must be a dict with a 'body' key "
                            f"(and optional 'contentType', 'delaySeconds'), got {item!r:.80}")
        rest = {k: v for k, v in item.items() if k != "body"}
        opts = read_options(at, None, rest)
        content_type = check_content_type(opts.get("content_type"), at)
        delay = check_delay(opts.get("delay_seconds"), at)
        wire.append([content_type, encode_body(item["body"], content_type, at), delay])
    check_sizes([len(w[1]) for w in wire], where)
    return wire, batch_delay


def prepare_one(body: Any, options: Any, kwargs: dict[str, Any],
                where: str) -> list[Any]:
    """Validate and serialize a ``send`` call: ``[content_type, body_bytes, delay_or_None]``."""
    opts = read_options(where, options, kwargs)
    content_type = check_content_type(opts.get("content_type"), where)
    delay = check_delay(opts.get("delay_seconds"), where)
    data = encode_body(body, content_type, where)
    check_sizes([len(data)], where)
    return [content_type, data, delay]
