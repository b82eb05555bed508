"""How step results, params, event payloads and outputs are stored: msgpack with one extension.

Why msgpack rather than JSON: ``bytes`` are a documented result type and must round-trip
without base64, and the host must be able to read what an isolate stored without trusting
it (msgpack decoding never runs code, unlike pickle). ``datetime`` is the one extension
(ISO text, so naive and aware values both survive). Tuples come back as lists, exactly
as JSON would do it; the isolate hands ``run`` the decoded value even on the first run,
so the first run and every replay see the same thing.

Shared by both sides: the isolate encodes, the host stores blobs and decodes them only to
show them (control API, CLI, test handles).
"""

from __future__ import annotations

import base64
import datetime as _dt
from typing import Any

import msgpack

#: the documented limit for one step result, a run's output, params or an event payload
MAX_VALUE_BYTES = 1024 * 1024

_EXT_DATETIME = 1
_ALLOWED = "JSON values (dict, list, str, int, float, bool, None), bytes or datetime"


class AttrDict(dict):
    """A dict that also answers attribute access, as Cloudflare's objects do in Python.

    Stays a real dict so ``Response.json(await inst.status())`` and ``json.dumps`` work.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no field {name!r}; fields: {', '.join(self) or 'none'}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def attrs(value: Any) -> Any:
    """Wrap dicts (deeply) as :class:`AttrDict`."""
    if isinstance(value, dict):
        return AttrDict({k: attrs(v) for k, v in value.items()})
    if isinstance(value, list):
        return [attrs(v) for v in value]
    return value


def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, obj.isoformat().encode())
    raise TypeError(type(obj).__name__)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return _dt.datetime.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


def encode(value: Any, *, what: str = "value", limit: int = MAX_VALUE_BYTES) -> bytes:
    """Serialize ``value``; raise TypeError naming the unsupported type and where it is,
    or ValueError when the result is larger than ``limit``. ``what`` names the value in
    messages ("the result of step 'charge'")."""
    try:
        data = msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)
    except (TypeError, OverflowError, ValueError):
        raise TypeError(_explain(value, what)) from None
    if len(data) > limit:
        raise ValueError(
            f"{what} is {_size(len(data))} serialized; the limit is {_size(limit)}. "
            f"Store large data elsewhere (KV, a Durable Object) and return its key instead")
    return data


def decode(data: bytes | None) -> Any:
    """The value ``encode`` stored (None stays None)."""
    if data is None:
        return None
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def to_json(value: Any) -> Any:
    """A JSON-ready view for the control API and CLI: bytes as base64, datetimes as ISO text."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    return value


def _explain(value: Any, what: str) -> str:
    """Find the first value msgpack refused and say where it is."""
    found = _find_bad(value, "")
    if found is None:
        return f"{what} cannot be serialized; return {_ALLOWED}"
    path, bad = found
    where = f" at {path}" if path else ""
    if isinstance(bad, int):
        return f"{what} holds an integer too large to store ({bad}){where}; store it as a string"
    return (f"{what} is not serializable: it holds a value of type {type(bad).__name__}{where}. "
            f"Return {_ALLOWED}")


def _find_bad(value: Any, path: str) -> tuple[str, Any] | None:
    if value is None or isinstance(value, (bool, float, str, bytes, _dt.datetime)):
        return None
    if isinstance(value, int):
        return None if -(2 ** 63) <= value < 2 ** 64 else (path, value)
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _find_bad(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return (f"{path} (a dict key)", key)
            found = _find_bad(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return (path, value)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"
