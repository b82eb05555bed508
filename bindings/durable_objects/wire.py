"""How Durable Object calls cross isolates: pickled arguments out, a tagged answer back.

The host forwards these bytes without reading them (SPEC 6). An answer is data:
``[0, value]`` on success, ``[1, type_name, message, pickled_exception | None, traceback]``
when the object raised. Errors travel inside a successful channel answer, not as a channel
error, so the caller can re-raise the object's own exception (same class, same message) and
not a generic copy the host rebuilt from a type name.
"""

from __future__ import annotations

import builtins
import io
import pickle
import sys
from typing import Any, NamedTuple

import cloudpickle


class ObjectEvent(NamedTuple):
    """``durable_objects.call``: one event for one object, from the host to the isolate that
    runs its class (a msgpack list on the wire; both halves use these names)."""

    namespace: str
    class_name: str
    id_hex: str
    name: str | None
    #: fetch, call (RPC), get (a property) or alarm
    kind: str
    method: str
    #: pickled arguments (fetch, call), None (get) or the retry count (alarm)
    body: Any
    #: keys of the objects up the call chain (re-entry keeps their input gates)
    chain: list[str]


OK, ERROR = 0, 1
_MAX_TRACEBACK = 6000


def dumps(value: Any) -> bytes:
    """Plain pickle when it can (fast), cloudpickle for lambdas and local classes."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return cloudpickle.dumps(value, protocol=5)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def dumps_args(args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> bytes:
    """Pickle RPC arguments, or raise TypeError naming the argument that cannot travel."""
    try:
        return dumps((args, kwargs))
    except Exception as exc:
        what, bad = _find_unpicklable(args, kwargs)
        raise TypeError(
            f"{where}: {what} of type {type(bad).__name__} cannot be sent to a Durable Object "
            f"(it cannot be pickled: {exc}); pass plain data (str, numbers, lists, dicts, "
            f"dataclasses) instead") from None


def _find_unpicklable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    for i, value in enumerate(args):
        try:
            dumps(value)
        except Exception:
            return f"argument {i + 1}", value
    for key, value in kwargs.items():
        try:
            dumps(value)
        except Exception:
            return f"keyword argument {key!r}", value
    return "an argument", (args, kwargs)


def error_answer(exc: BaseException, traceback_text: str | None) -> list[Any]:
    """Describe an exception raised inside an object; pickle it when it allows."""
    try:
        blob: bytes | None = cloudpickle.dumps(exc, protocol=5)
    except Exception:
        blob = None
    tb = traceback_text or ""
    if len(tb) > _MAX_TRACEBACK:
        tb = "...\n" + tb[-_MAX_TRACEBACK:]
    return [ERROR, type(exc).__name__, str(exc), blob, tb]


def rebuild_error(answer: list[Any], where: str) -> BaseException:
    """The exception an object raised, as the caller should see it.

    The pickled original when it unpickles here (same class, same message, same
    attributes); otherwise the builtin class of that name, or a RuntimeError whose message
    starts with the type name (a class defined only in the other Worker's script).
    """
    _, type_name, message, blob, tb = answer
    exc: BaseException | None = None
    if blob is not None:
        try:
            loaded = _KnownModulesOnly(io.BytesIO(blob)).load()
        except Exception:
            loaded = None
        if isinstance(loaded, Exception):
            exc = loaded
    if exc is None:
        cls = getattr(builtins, str(type_name), None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                exc = cls(message)
            except Exception:
                exc = None
        if exc is None:
            exc = RuntimeError(f"{type_name}: {message}")
    if tb:
        try:
            exc.add_note(f"(raised in Durable Object {where}; its traceback:)\n{tb.rstrip()}")
        except Exception:
            pass
    return exc


class _KnownModulesOnly(pickle.Unpickler):
    """Unpickles using only modules this isolate has already imported.

    An exception class defined in another Worker's script would otherwise be imported by
    name here, running that script's module code in the caller's isolate.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module not in sys.modules:
            raise pickle.UnpicklingError(f"{module} is not imported in this Worker")
        return super().find_class(module, name)

